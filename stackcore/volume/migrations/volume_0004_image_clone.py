"""volume: volumes.image_clone (a volume made as a copy-on-write clone of its image)

Revision ID: volume_0004
Revises: volume_0003
Create Date: 2026-12-03 00:40:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'volume_0004'
down_revision = 'volume_0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('volumes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('image_clone', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('volumes', schema=None) as batch_op:
        batch_op.drop_column('image_clone')
