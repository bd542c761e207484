"""compute wiring tables: requested networks and block device mappings

Revision ID: 0400_e2e
Revises: 0001_core
Create Date: 2026-11-21 20:30:00
"""

import sqlalchemy as sa
from alembic import op


revision = '0400_e2e'
down_revision = '0001_core'
branch_labels = ('e2e',)
depends_on = None


def upgrade() -> None:
    op.create_table('instance_network_requests',
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('requests', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('instance_uuid')
    )
    op.create_table('block_device_mappings',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('volume_id', sa.String(length=36), nullable=False),
    sa.Column('device_name', sa.String(length=255), nullable=False),
    sa.Column('boot', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('attachment_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('instance_uuid', 'device_name', name='uniq_bdm0instance0device'),
    sa.UniqueConstraint('instance_uuid', 'volume_id', name='uniq_bdm0instance0volume')
    )
    op.create_index(op.f('ix_block_device_mappings_instance_uuid'), 'block_device_mappings',
                    ['instance_uuid'], unique=False)
    op.create_index(op.f('ix_block_device_mappings_volume_id'), 'block_device_mappings',
                    ['volume_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_block_device_mappings_volume_id'), table_name='block_device_mappings')
    op.drop_index(op.f('ix_block_device_mappings_instance_uuid'),
                  table_name='block_device_mappings')
    op.drop_table('block_device_mappings')
    op.drop_table('instance_network_requests')
