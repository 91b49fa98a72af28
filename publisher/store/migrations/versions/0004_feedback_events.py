"""bounces and complaints: feedback_events, deliveries looked up by Message-ID

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 07:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from publisher.store.tables import UTCDateTime

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'feedback_events',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('delivery_id', sa.Integer(), nullable=True),
        sa.Column('issue_id', sa.Integer(), nullable=True),
        sa.Column('at', UTCDateTime(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('status_code', sa.String(length=20), nullable=True),
        sa.Column('diagnostic', sa.Text(), nullable=False),
        sa.Column('report_id', sa.String(length=255), nullable=False),
        sa.Column('source', sa.String(length=50), nullable=False),
        sa.ForeignKeyConstraint(
            ['delivery_id'], ['deliveries.id'],
            name=op.f('fk_feedback_events_delivery_id_deliveries'), ondelete='SET NULL',
        ),
        sa.ForeignKeyConstraint(
            ['issue_id'], ['issues.id'], name=op.f('fk_feedback_events_issue_id_issues'), ondelete='SET NULL'
        ),
        sa.ForeignKeyConstraint(
            ['subscriber_id'], ['subscribers.id'],
            name=op.f('fk_feedback_events_subscriber_id_subscribers'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback_events')),
        sa.UniqueConstraint('report_id', 'subscriber_id', name='uq_feedback_events_report_subscriber'),
    )
    op.create_index('ix_feedback_events_subscriber_at', 'feedback_events', ['subscriber_id', 'at'], unique=False)
    op.create_index('ix_feedback_events_issue', 'feedback_events', ['issue_id'], unique=False)
    op.create_index('ix_feedback_events_at', 'feedback_events', ['at'], unique=False)
    op.create_index('ix_deliveries_message_id', 'deliveries', ['message_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_deliveries_message_id', table_name='deliveries')
    op.drop_index('ix_feedback_events_at', table_name='feedback_events')
    op.drop_index('ix_feedback_events_issue', table_name='feedback_events')
    op.drop_index('ix_feedback_events_subscriber_at', table_name='feedback_events')
    op.drop_table('feedback_events')
