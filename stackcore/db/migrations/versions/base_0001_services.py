"""the shared base: the services table (every family registers its services in it)

Revision ID: base_0001
Revises:
Create Date: 2026-12-02 08:00:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'base_0001'
down_revision = None
branch_labels = ('base',)
depends_on = None


def upgrade() -> None:
    op.create_table('services',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('binary', sa.String(length=255), nullable=False),
    sa.Column('topic', sa.String(length=255), nullable=False),
    sa.Column('availability_zone', sa.String(length=255), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('disabled_reason', sa.String(length=255), nullable=True),
    sa.Column('report_count', sa.Integer(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('host', 'binary', name='uniq_services0host0binary')
    )


def downgrade() -> None:
    op.drop_table('services')
