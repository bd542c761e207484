"""volume: backends, pools, types, volumes, attachments, snapshots, faults

The same schema as wave-1 revision 0200_volume.

Revision ID: volume_0001
Revises:
Create Date: 2026-12-02 08:00:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'volume_0001'
down_revision = None
branch_labels = ('volume',)
depends_on = 'base_0001'


def upgrade() -> None:
    op.create_table('volume_backends',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('volume_backend_name', sa.String(length=255), nullable=True),
    sa.Column('stats', sa.JSON(), nullable=False),
    sa.Column('reporting', sa.Boolean(), nullable=False),
    sa.Column('report_error', sa.Text(), nullable=True),
    sa.Column('reported_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('host')
    )

    op.create_table('volume_faults',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('resource', sa.String(length=16), nullable=False),
    sa.Column('resource_id', sa.String(length=36), nullable=False),
    sa.Column('exc_class', sa.String(length=255), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('step', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )

    with op.batch_alter_table('volume_faults', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_volume_faults_resource_id'), ['resource_id'], unique=False)

    op.create_table('volume_pools',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pool_name', sa.String(length=255), nullable=False),
    sa.Column('stats', sa.JSON(), nullable=False),
    sa.Column('present', sa.Boolean(), nullable=False),
    sa.Column('allocated_capacity_gb', sa.Integer(), nullable=False),
    sa.Column('allocated_at_report', sa.Integer(), nullable=False),
    sa.Column('headroom_thin_gb', sa.Float(), nullable=True),
    sa.Column('headroom_thick_gb', sa.Float(), nullable=True),
    sa.Column('reported_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('host', 'pool_name', name='uniq_volume_pools0host0pool')
    )

    with op.batch_alter_table('volume_pools', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_volume_pools_host'), ['host'], unique=False)

    op.create_table('volume_types',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('extra_specs', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )

    op.create_table('volumes',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('display_name', sa.String(length=255), nullable=True),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('volume_type_id', sa.String(length=36), nullable=True),
    sa.Column('availability_zone', sa.String(length=255), nullable=True),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('pool', sa.String(length=255), nullable=True),
    sa.Column('allocated_gb', sa.Integer(), nullable=False),
    sa.Column('multiattach', sa.Boolean(), nullable=False),
    sa.Column('snapshot_id', sa.String(length=36), nullable=True),
    sa.Column('source_volid', sa.String(length=36), nullable=True),
    sa.Column('image_id', sa.String(length=36), nullable=True),
    sa.Column('provider_location', sa.Text(), nullable=True),
    sa.Column('provider_auth', sa.Text(), nullable=True),
    sa.Column('driver_data', sa.JSON(), nullable=False),
    sa.Column('previous_status', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )

    with op.batch_alter_table('volumes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_volumes_host'), ['host'], unique=False)
        batch_op.create_index(batch_op.f('ix_volumes_status'), ['status'], unique=False)

    op.create_table('volume_attachments',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('volume_id', sa.String(length=36), nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=True),
    sa.Column('mountpoint', sa.String(length=255), nullable=True),
    sa.Column('connector', sa.JSON(), nullable=False),
    sa.Column('attach_status', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('detached_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['volume_id'], ['volumes.id'], ),
    sa.PrimaryKeyConstraint('id')
    )

    with op.batch_alter_table('volume_attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_volume_attachments_volume_id'), ['volume_id'], unique=False)

    op.create_table('volume_snapshots',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('volume_id', sa.String(length=36), nullable=False),
    sa.Column('display_name', sa.String(length=255), nullable=True),
    sa.Column('volume_size', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('provider_location', sa.Text(), nullable=True),
    sa.Column('driver_data', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['volume_id'], ['volumes.id'], ),
    sa.PrimaryKeyConstraint('id')
    )

    with op.batch_alter_table('volume_snapshots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_volume_snapshots_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_snapshots_volume_id'), ['volume_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('volume_snapshots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_volume_snapshots_volume_id'))
        batch_op.drop_index(batch_op.f('ix_volume_snapshots_status'))

    op.drop_table('volume_snapshots')

    with op.batch_alter_table('volume_attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_volume_attachments_volume_id'))

    op.drop_table('volume_attachments')

    with op.batch_alter_table('volumes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_volumes_status'))
        batch_op.drop_index(batch_op.f('ix_volumes_host'))

    op.drop_table('volumes')

    op.drop_table('volume_types')

    with op.batch_alter_table('volume_pools', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_volume_pools_host'))

    op.drop_table('volume_pools')

    with op.batch_alter_table('volume_faults', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_volume_faults_resource_id'))

    op.drop_table('volume_faults')

    op.drop_table('volume_backends')
