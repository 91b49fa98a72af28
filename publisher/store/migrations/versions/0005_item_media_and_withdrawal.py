"""item media (picture alt and size, enclosure), the hidden flag and the canonical link key

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-30 07:00:00.000000
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def _link_key(link: str) -> str:
    """As publisher.store.items.link_key at the time of writing (a migration never changes)."""
    parts = urlsplit(link)
    canonical = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('image_alt', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('image_width', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('image_height', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('enclosure_url', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('enclosure_type', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('enclosure_length', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('hidden', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('link_key', sa.String(length=64), server_default='', nullable=False))
        batch_op.create_index('ix_items_link_key', ['link_key'], unique=False)
    items = sa.table('items', sa.column('id', sa.String()), sa.column('link', sa.Text()), sa.column('link_key', sa.String()))
    conn = op.get_bind()
    rows = conn.execute(sa.select(items.c.id, items.c.link)).all()
    for start in range(0, len(rows), 500):
        conn.execute(
            items.update().where(items.c.id == sa.bindparam('item_id')).values(link_key=sa.bindparam('key')),
            [{'item_id': r.id, 'key': _link_key(r.link)} for r in rows[start : start + 500]],
        )


def downgrade() -> None:
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_index('ix_items_link_key')
        batch_op.drop_column('link_key')
        batch_op.drop_column('hidden')
        batch_op.drop_column('enclosure_length')
        batch_op.drop_column('enclosure_type')
        batch_op.drop_column('enclosure_url')
        batch_op.drop_column('image_height')
        batch_op.drop_column('image_width')
        batch_op.drop_column('image_alt')
