"""network: owner project of networks, subnets and ports; shared and external networks

Rows made before projects existed belong to the admin project; no network becomes shared.

Revision ID: network_0002
Revises: network_0001
Create Date: 2026-12-02 11:00:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'network_0002'
down_revision = 'network_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('networks', 'subnets', 'ports'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('project_id', sa.String(length=255), nullable=False,
                                          server_default='admin'))
            batch_op.create_index(batch_op.f(f'ix_{table}_project_id'), ['project_id'],
                                  unique=False)
    with op.batch_alter_table('networks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shared', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('router_external', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('networks', schema=None) as batch_op:
        batch_op.drop_column('router_external')
        batch_op.drop_column('shared')
    for table in ('ports', 'subnets', 'networks'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_project_id'))
            batch_op.drop_column('project_id')
