"""network: subnets' dns_nameservers and host_routes (Neutron's subnet attributes)

Stored as JSON lists on ``subnets`` like ``allocation_pools`` rather than Neutron's
``dnsnameservers``/``subnetroutes`` tables: they are always read and replaced whole with their
subnet and never queried by address; the list keeps the nameservers' order. The columns are
nullable so existing rows need no backfill (NULL reads as an empty list) and no JSON server
default is needed (MySQL refuses literal defaults on JSON columns).

Revision ID: network_0004
Revises: network_0003
Create Date: 2026-12-03 01:45:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'network_0004'
down_revision = 'network_0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('subnets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dns_nameservers', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('host_routes', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('subnets', schema=None) as batch_op:
        batch_op.drop_column('host_routes')
        batch_op.drop_column('dns_nameservers')
