"""volume: volumes.migration_status (volume migration and retype between backends)

Revision ID: volume_0005
Revises: volume_0004
Create Date: 2026-12-05 02:40:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'volume_0005'
down_revision = 'volume_0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('volumes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('migration_status', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('volumes', schema=None) as batch_op:
        batch_op.drop_column('migration_status')
