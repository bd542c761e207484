"""image: who runs an upload (owner and heartbeat) and image faults

An upload in ``saving`` names the process running it (``upload_owner``) and refreshes
``upload_heartbeat`` while its bytes flow, so that a start-up can tell an upload whose process
died from one still running elsewhere, and mark it ``killed`` with a fault (``image_faults``).

Revision ID: image_0004
Revises: image_0003
Create Date: 2026-12-02 16:20:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'image_0004'
down_revision = 'image_0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('upload_owner', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('upload_heartbeat', sa.DateTime(), nullable=True))
    op.create_table(
        'image_faults',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('image_id', sa.String(length=36), nullable=False),
        sa.Column('exc_class', sa.String(length=255), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('step', sa.String(length=64), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('image_faults', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_image_faults_image_id'), ['image_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('image_faults', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_image_faults_image_id'))
    op.drop_table('image_faults')
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_column('upload_heartbeat')
        batch_op.drop_column('upload_owner')
