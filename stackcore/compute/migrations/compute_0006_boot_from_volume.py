"""compute: a server's root volume (boot from volume) and volumes deleted with their server

``boot_index`` 0 marks the mapping whose volume is the server's root disk (Nova's name; no
other index is used yet: data volumes keep NULL). ``delete_on_termination``: the volume is
deleted when the server is (a volume made from an image at boot, or one the caller gave with
that flag); existing mappings keep their volumes (false).

Revision ID: compute_0006
Revises: compute_0005
Create Date: 2026-12-04 22:50:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'compute_0006'
down_revision = 'compute_0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('block_device_mappings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('boot_index', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('delete_on_termination', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('block_device_mappings', schema=None) as batch_op:
        batch_op.drop_column('delete_on_termination')
        batch_op.drop_column('boot_index')
