"""image: the image registry

The same schema as the images table of wave-1 revision 0001_core.

Revision ID: image_0001
Revises:
Create Date: 2026-12-02 08:00:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'image_0001'
down_revision = None
branch_labels = ('image',)
depends_on = 'base_0001'


def upgrade() -> None:
    op.create_table('images',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('disk_format', sa.String(length=32), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('properties', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('images')
