"""web sign-up: consent text and confirmation on subscriptions, abuse-limit attempts, site secrets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from publisher.store.tables import UTCDateTime

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('consent_text', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('consent_language', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('confirmed_at', UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('confirmed_source', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('pending_from', sa.String(length=20), nullable=True))
    op.create_table(
        'signup_attempts',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_signup_attempts')),
    )
    op.create_index('ix_signup_attempts_kind_key_at', 'signup_attempts', ['kind', 'key', 'at'], unique=False)
    op.create_table(
        'site_secrets',
        sa.Column('name', sa.String(length=50), nullable=False),
        sa.Column('value', sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_site_secrets')),
    )


def downgrade() -> None:
    op.drop_table('site_secrets')
    op.drop_index('ix_signup_attempts_kind_key_at', table_name='signup_attempts')
    op.drop_table('signup_attempts')
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_column('pending_from')
        batch_op.drop_column('confirmed_source')
        batch_op.drop_column('confirmed_at')
        batch_op.drop_column('consent_language')
        batch_op.drop_column('consent_text')
