"""image: owner project and visibility

Images registered before projects existed belong to the admin project and stay public (every
project could use them).

Revision ID: image_0002
Revises: image_0001
Create Date: 2026-12-02 11:00:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'image_0002'
down_revision = 'image_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('project_id', sa.String(length=255), nullable=False,
                                      server_default='admin'))
        batch_op.add_column(sa.Column('visibility', sa.String(length=16), nullable=False,
                                      server_default='public'))
        batch_op.create_index(batch_op.f('ix_images_project_id'), ['project_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_images_project_id'))
        batch_op.drop_column('visibility')
        batch_op.drop_column('project_id')
