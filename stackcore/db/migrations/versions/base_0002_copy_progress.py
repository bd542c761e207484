"""base: copy_progress, the bytes done of each long copy still running

Revision ID: base_0002
Revises: base_0001
Create Date: 2026-12-03 00:45:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'base_0002'
down_revision = 'base_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'copy_progress',
        sa.Column('resource_type', sa.String(length=32), nullable=False),
        sa.Column('resource_id', sa.String(length=36), nullable=False),
        sa.Column('step', sa.String(length=64), nullable=False),
        sa.Column('bytes_done', sa.BigInteger(), nullable=False),
        sa.Column('bytes_total', sa.BigInteger(), nullable=True),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('resource_type', 'resource_id'),
    )


def downgrade() -> None:
    op.drop_table('copy_progress')
