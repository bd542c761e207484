"""scheduler tables: aggregates, server groups, scheduling attempts

Revision ID: 0300_scheduler
Revises: 0001_core
Create Date: 2026-11-21 20:00:00.000000
"""

import sqlalchemy as sa
from alembic import op


revision = '0300_scheduler'
down_revision = '0001_core'
branch_labels = ('scheduler',)
depends_on = None


def upgrade() -> None:
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


def downgrade() -> None:
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
