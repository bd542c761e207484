"""compute: migrations (resize and cold migrate, with confirm and revert)

Revision ID: compute_0003
Revises: compute_0002
Create Date: 2026-12-03 08:00:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'compute_0003'
down_revision = 'compute_0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('migrations',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('migration_type', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('source_host', sa.String(length=255), nullable=False),
    sa.Column('dest_host', sa.String(length=255), nullable=True),
    sa.Column('old_flavor_id', sa.String(length=36), nullable=False),
    sa.Column('old_flavor', sa.JSON(), nullable=False),
    sa.Column('new_flavor_id', sa.String(length=36), nullable=False),
    sa.Column('new_flavor', sa.JSON(), nullable=False),
    sa.Column('old_vm_state', sa.String(length=32), nullable=False),
    sa.Column('disk_info', sa.JSON(), nullable=False),
    sa.Column('source_attachments', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['instance_uuid'], ['instances.uuid'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('migrations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_migrations_instance_uuid'), ['instance_uuid'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_migrations_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('migrations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_migrations_status'))
        batch_op.drop_index(batch_op.f('ix_migrations_instance_uuid'))
    op.drop_table('migrations')
