"""network: a router's fault (why its L3 agent could not serve it)

``routers.fault``: the failure the serving L3 agent last reported for the router (its status is
then ``ERROR``), cleared when the agent serves it again. Floating IPs already have ``status``;
from this revision on it is what the agent reported (DOWN until it applied the association).

Revision ID: network_0006
Revises: network_0005
Create Date: 2026-12-03 21:30:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'network_0006'
down_revision = 'network_0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('routers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fault', sa.Text(), nullable=True))
