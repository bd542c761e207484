"""project: quota limits and the per-project quota lock

Revision ID: project_0001
Revises:
Create Date: 2026-12-02 10:00:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'project_0001'
down_revision = None
branch_labels = ('project',)
depends_on = 'base_0001'


def upgrade() -> None:
    op.create_table('quota_limits',
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('resource', sa.String(length=255), nullable=False),
    sa.Column('hard_limit', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('project_id', 'resource')
    )
    op.create_table('project_quota_locks',
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('project_id')
    )


def downgrade() -> None:
    op.drop_table('project_quota_locks')
    op.drop_table('quota_limits')
