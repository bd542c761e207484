"""network: routers and floating IPs (Neutron's L3)

``routers`` (``host``: the one L3 agent serving it, "" until claimed) and ``floatingips``.
A router's ports are the ports whose ``device_id`` is its id (no ``routerports`` table: the
port's ``device_owner`` already says gateway or interface).

Revision ID: network_0005
Revises: network_0004
Create Date: 2026-12-03 16:45:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'network_0005'
down_revision = 'network_0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'routers',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('project_id', sa.String(length=255), server_default='admin',
                  nullable=False),
        sa.Column('admin_state_up', sa.Boolean(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('gw_port_id', sa.String(length=36), nullable=True),
        sa.Column('enable_snat', sa.Boolean(), nullable=False),
        sa.Column('host', sa.String(length=255), server_default='', nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['gw_port_id'], ['ports.id'],
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('routers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_routers_host'), ['host'], unique=False)
        batch_op.create_index(batch_op.f('ix_routers_project_id'), ['project_id'],
                              unique=False)
    op.create_table(
        'floatingips',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('project_id', sa.String(length=255), server_default='admin',
                  nullable=False),
        sa.Column('floating_network_id', sa.String(length=36), nullable=False),
        sa.Column('floating_port_id', sa.String(length=36), nullable=False),
        sa.Column('floating_ip_address', sa.String(length=64), nullable=False),
        sa.Column('fixed_port_id', sa.String(length=36), nullable=True),
        sa.Column('fixed_ip_address', sa.String(length=64), nullable=True),
        sa.Column('router_id', sa.String(length=36), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['floating_network_id'], ['networks.id']),
        sa.ForeignKeyConstraint(['floating_port_id'], ['ports.id']),
        sa.ForeignKeyConstraint(['fixed_port_id'], ['ports.id'],
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['router_id'], ['routers.id'],
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('floatingips', schema=None) as batch_op:
        for column in ('floating_network_id', 'floating_port_id', 'fixed_port_id',
                       'router_id', 'project_id'):
            batch_op.create_index(batch_op.f(f'ix_floatingips_{column}'), [column],
                                  unique=False)


def downgrade() -> None:
    op.drop_table('floatingips')
    op.drop_table('routers')
