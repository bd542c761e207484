"""volume: backups (volume_backups)

Revision ID: volume_0003
Revises: volume_0002
Create Date: 2026-12-02 20:40:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'volume_0003'
down_revision = 'volume_0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('volume_backups',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('volume_id', sa.String(length=36), nullable=False),
    sa.Column('display_name', sa.String(length=255), nullable=True),
    sa.Column('project_id', sa.String(length=255), server_default='admin', nullable=False),
    sa.Column('user_id', sa.String(length=255), server_default='admin', nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('backup_driver', sa.String(length=255), nullable=False),
    sa.Column('parent_id', sa.String(length=36), nullable=True),
    sa.Column('is_incremental', sa.Boolean(), nullable=False),
    sa.Column('location', sa.Text(), nullable=True),
    sa.Column('driver_data', sa.JSON(), nullable=False),
    sa.Column('checksum', sa.String(length=80), nullable=True),
    sa.Column('stored_bytes', sa.BigInteger(), nullable=True),
    sa.Column('restore_volume_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('volume_backups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_volume_backups_parent_id'), ['parent_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_volume_backups_project_id'), ['project_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_volume_backups_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_backups_volume_id'), ['volume_id'],
                              unique=False)


def downgrade() -> None:
    op.drop_table('volume_backups')
