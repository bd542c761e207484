"""volume: owners (project, user) of volumes and snapshots, private volume types

Rows made before projects existed belong to the admin project; existing types stay public.

Revision ID: volume_0002
Revises: volume_0001
Create Date: 2026-12-02 11:00:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'volume_0002'
down_revision = 'volume_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('volumes', 'volume_snapshots'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('project_id', sa.String(length=255), nullable=False,
                                          server_default='admin'))
            batch_op.add_column(sa.Column('user_id', sa.String(length=255), nullable=False,
                                          server_default='admin'))
            batch_op.create_index(batch_op.f(f'ix_{table}_project_id'), ['project_id'],
                                  unique=False)
    with op.batch_alter_table('volume_types', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_public', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
    op.create_table('volume_type_projects',
    sa.Column('volume_type_id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['volume_type_id'], ['volume_types.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('volume_type_id', 'project_id')
    )


def downgrade() -> None:
    op.drop_table('volume_type_projects')
    with op.batch_alter_table('volume_types', schema=None) as batch_op:
        batch_op.drop_column('is_public')
    for table in ('volume_snapshots', 'volumes'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_project_id'))
            batch_op.drop_column('user_id')
            batch_op.drop_column('project_id')
