"""image: uploaded images (status, container format, protected flag, checksum, store location;
64-bit size)

Images registered before stay what they were: active local files, bare, unprotected.

Revision ID: image_0003
Revises: image_0002
Create Date: 2026-12-02 13:30:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'image_0003'
down_revision = 'image_0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=16), nullable=False,
                                      server_default='active'))
        batch_op.add_column(sa.Column('container_format', sa.String(length=16), nullable=False,
                                      server_default='bare'))
        batch_op.add_column(sa.Column('protected', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('sha256', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('store', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('location', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('virtual_size', sa.BigInteger(), nullable=True))
        # uploads may be over 2 GiB: PostgreSQL's INTEGER is 32-bit
        batch_op.alter_column('size_bytes', existing_type=sa.Integer(), type_=sa.BigInteger(),
                              existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.alter_column('size_bytes', existing_type=sa.BigInteger(), type_=sa.Integer(),
                              existing_nullable=False)
        for column in ('virtual_size', 'location', 'store', 'sha256', 'protected',
                       'container_format', 'status'):
            batch_op.drop_column(column)
