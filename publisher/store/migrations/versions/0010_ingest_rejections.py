"""ingest rejections: the items each source's last read rejected, with the reason

Revision ID: 0010
Revises: 0006
Create Date: 2026-11-30 07:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from publisher.store.tables import UTCDateTime

revision = '0010'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ingest_rejections',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('source', sa.String(length=100), nullable=False),
        sa.Column('at', UTCDateTime(), nullable=False),
        sa.Column('origin', sa.Text(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ingest_rejections')),
    )
    op.create_index('ix_ingest_rejections_source', 'ingest_rejections', ['source'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_ingest_rejections_source', table_name='ingest_rejections')
    op.drop_table('ingest_rejections')
