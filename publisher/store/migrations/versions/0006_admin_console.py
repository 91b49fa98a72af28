"""admin console: sessions, sign-in failures and lock-outs, the audit log

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-30 06:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from publisher.store.tables import UTCDateTime

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'admin_sessions',
        sa.Column('id_hash', sa.String(length=64), nullable=False),
        sa.Column('username', sa.String(length=32), nullable=False),
        sa.Column('csrf', sa.String(length=64), nullable=False),
        sa.Column('created', UTCDateTime(), nullable=False),
        sa.Column('last_seen', UTCDateTime(), nullable=False),
        sa.Column('client', sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint('id_hash', name=op.f('pk_admin_sessions')),
    )
    op.create_table(
        'admin_attempts',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_attempts')),
    )
    op.create_index('ix_admin_attempts_kind_key_at', 'admin_attempts', ['kind', 'key', 'at'], unique=False)
    op.create_table(
        'admin_audit',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('at', UTCDateTime(), nullable=False),
        sa.Column('username', sa.String(length=32), nullable=False),
        sa.Column('action', sa.String(length=50), nullable=False),
        sa.Column('detail', sa.Text(), nullable=False),
        sa.Column('client', sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_audit')),
    )
    op.create_index('ix_admin_audit_at', 'admin_audit', ['at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_admin_audit_at', table_name='admin_audit')
    op.drop_table('admin_audit')
    op.drop_index('ix_admin_attempts_kind_key_at', table_name='admin_attempts')
    op.drop_table('admin_attempts')
    op.drop_table('admin_sessions')
