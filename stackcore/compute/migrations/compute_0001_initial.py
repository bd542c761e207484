"""compute: hosts, flavors, servers and faults, placement (aggregates, server groups,
scheduling attempts), wiring to network and volume (network requests, block device mappings)

The same schema as wave-1 revisions 0001_core (less services and images), 0300_scheduler and
0400_e2e.

Revision ID: compute_0001
Revises:
Create Date: 2026-12-02 08:00:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'compute_0001'
down_revision = None
branch_labels = ('compute',)
depends_on = 'base_0001'


def upgrade() -> None:
    op.create_table('allocations',
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('vcpus', sa.Integer(), nullable=False),
    sa.Column('memory_mb', sa.Integer(), nullable=False),
    sa.Column('disk_gb', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('instance_uuid')
    )

    with op.batch_alter_table('allocations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_allocations_host'), ['host'], unique=False)

    op.create_table('compute_nodes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('hypervisor_hostname', sa.String(length=255), nullable=True),
    sa.Column('hypervisor_type', sa.String(length=255), nullable=True),
    sa.Column('vcpus', sa.Integer(), nullable=False),
    sa.Column('memory_mb', sa.Integer(), nullable=False),
    sa.Column('local_gb', sa.Integer(), nullable=False),
    sa.Column('stats', sa.JSON(), nullable=False),
    sa.Column('reporting', sa.Boolean(), nullable=False),
    sa.Column('report_error', sa.Text(), nullable=True),
    sa.Column('reported_at', sa.DateTime(), nullable=True),
    sa.Column('alloc_vcpus', sa.Integer(), nullable=False),
    sa.Column('alloc_memory_mb', sa.Integer(), nullable=False),
    sa.Column('alloc_disk_gb', sa.Integer(), nullable=False),
    sa.Column('alloc_instances', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('host')
    )

    op.create_table('flavors',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('vcpus', sa.Integer(), nullable=False),
    sa.Column('ram_mb', sa.Integer(), nullable=False),
    sa.Column('disk_gb', sa.Integer(), nullable=False),
    sa.Column('extra_specs', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )


    op.create_table('instances',
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('flavor_id', sa.String(length=36), nullable=False),
    sa.Column('flavor', sa.JSON(), nullable=False),
    sa.Column('image_id', sa.String(length=36), nullable=False),
    sa.Column('availability_zone', sa.String(length=255), nullable=True),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('vm_state', sa.String(length=32), nullable=False),
    sa.Column('task_state', sa.String(length=32), nullable=True),
    sa.Column('power_state', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('launched_at', sa.DateTime(), nullable=True),
    sa.Column('deleted_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('uuid')
    )

    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instances_host'), ['host'], unique=False)
        batch_op.create_index(batch_op.f('ix_instances_vm_state'), ['vm_state'], unique=False)

    op.create_table('instance_faults',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('exc_class', sa.String(length=255), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('step', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['instance_uuid'], ['instances.uuid'], ),
    sa.PrimaryKeyConstraint('id')
    )

    with op.batch_alter_table('instance_faults', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_faults_instance_uuid'), ['instance_uuid'], unique=False)

    op.create_table('aggregates',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )

    op.create_table('aggregate_hosts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('aggregate_id', sa.Integer(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['aggregate_id'], ['aggregates.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('aggregate_id', 'host', name='uniq_aggregate_hosts0aggregate0host')
    )

    with op.batch_alter_table('aggregate_hosts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_aggregate_hosts_aggregate_id'), ['aggregate_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_aggregate_hosts_host'), ['host'], unique=False)

    op.create_table('server_groups',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('policy', sa.String(length=32), nullable=False),
    sa.Column('rules', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )

    op.create_table('server_group_members',
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('group_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['server_groups.id'], ),
    sa.PrimaryKeyConstraint('instance_uuid')
    )

    with op.batch_alter_table('server_group_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_server_group_members_group_id'), ['group_id'],
                              unique=False)

    op.create_table('scheduling_attempts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )

    with op.batch_alter_table('scheduling_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scheduling_attempts_instance_uuid'),
                              ['instance_uuid'], unique=False)

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

    with op.batch_alter_table('scheduling_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scheduling_attempts_instance_uuid'))

    op.drop_table('scheduling_attempts')

    with op.batch_alter_table('server_group_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_server_group_members_group_id'))

    op.drop_table('server_group_members')

    op.drop_table('server_groups')

    with op.batch_alter_table('aggregate_hosts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_aggregate_hosts_host'))
        batch_op.drop_index(batch_op.f('ix_aggregate_hosts_aggregate_id'))

    op.drop_table('aggregate_hosts')

    op.drop_table('aggregates')

    with op.batch_alter_table('instance_faults', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instance_faults_instance_uuid'))

    op.drop_table('instance_faults')

    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instances_vm_state'))
        batch_op.drop_index(batch_op.f('ix_instances_host'))

    op.drop_table('instances')


    op.drop_table('flavors')

    op.drop_table('compute_nodes')

    with op.batch_alter_table('allocations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_allocations_host'))

    op.drop_table('allocations')
