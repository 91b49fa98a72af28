"""many senders: worker leases, started marks, fire-time claims, the due index

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 10:00:00.000000

Several `publisher worker` processes on several hosts share one queue, and several
`publisher run` daemons one scheduler:

* ``workers``: each sending process's lease and running counts. When a lease lapses
  (a lost host), another process settles the rows it had claimed.
* ``deliveries.started_at``: set in batches before messages may start to go out, so a
  lost worker's rows can be split into "queue again" and "unknown" without its journal.
* ``schedule_state.claimed_fire/claimed_until/claimed_by``: the fire time a daemon is
  serving, so that a second daemon that takes the scheduler over never serves it again.
* ``ix_deliveries_due`` and ``ix_deliveries_sending``: partial indexes on the rows still
  to send and the rows in flight.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from publisher.store.tables import UTCDateTime

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'workers',
        sa.Column('id', sa.String(length=100), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('started', UTCDateTime(), nullable=False),
        sa.Column('last_seen', UTCDateTime(), nullable=False),
        sa.Column('lease_until', UTCDateTime(), nullable=False),
        sa.Column('expired', sa.Boolean(), nullable=False),
        sa.Column('ended', UTCDateTime(), nullable=True),
        sa.Column('sent', sa.Integer(), nullable=False),
        sa.Column('deferred', sa.Integer(), nullable=False),
        sa.Column('failed', sa.Integer(), nullable=False),
        sa.Column('bounced', sa.Integer(), nullable=False),
        sa.Column('unknown', sa.Integer(), nullable=False),
        sa.Column('skipped', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_workers')),
    )
    op.create_index('ix_workers_lease', 'workers', ['ended', 'lease_until'], unique=False)
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('started_at', UTCDateTime(), nullable=True))
        batch_op.create_index(
            'ix_deliveries_due',
            ['id', 'next_attempt'],
            unique=False,
            postgresql_where=sa.text("status IN ('pending', 'deferred')"),
            sqlite_where=sa.text("status IN ('pending', 'deferred')"),
        )
        batch_op.create_index(
            'ix_deliveries_sending',
            ['claimed_by'],
            unique=False,
            postgresql_where=sa.text("status = 'sending'"),
            sqlite_where=sa.text("status = 'sending'"),
        )
    with op.batch_alter_table('schedule_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_fire', UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('claimed_until', UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('schedule_state', schema=None) as batch_op:
        batch_op.drop_column('claimed_by')
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('claimed_fire')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_sending')
        batch_op.drop_index('ix_deliveries_due')
        batch_op.drop_column('started_at')
    op.drop_index('ix_workers_lease', table_name='workers')
    op.drop_table('workers')
