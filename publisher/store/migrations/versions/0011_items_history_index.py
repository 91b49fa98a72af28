"""items: a covering index for the feed archives' history read

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 07:00:00.000000

Every build reads every item's id, category, language and content hash, and what
decides whether readers see it (hidden, source, link key), in published order (ItemStore.history) to plan the RFC 5005 archive pages. With this index the read
is an index-only scan that never touches the wide rows (summary, content).
"""

from __future__ import annotations

from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        'ix_items_history',
        'items',
        ['published', 'id', 'category', 'language', 'content_hash', 'hidden', 'source', 'link_key'],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index('ix_items_history', table_name='items')
