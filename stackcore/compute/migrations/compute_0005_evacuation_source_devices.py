"""compute: what an evacuated server was wired with on its dead host (its ports' network_info
and its block devices there), for that host's destroy of the old instance when it comes back

Evacuations made before keep none (NULL): their old host destroys with the server's ports and
volumes as they are then.

Revision ID: compute_0005
Revises: compute_0004
Create Date: 2026-12-03 21:00:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'compute_0005'
down_revision = 'compute_0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('migrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_network_info', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('source_block_devices', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('migrations', schema=None) as batch_op:
        batch_op.drop_column('source_block_devices')
        batch_op.drop_column('source_network_info')
