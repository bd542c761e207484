"""compute: owners (project, user) of servers and server groups, private flavors, the flavor's
vCPUs and RAM on each server (counted by quotas)

Rows made before projects existed belong to the embedded default's admin project ("admin"):
the only caller a wave-1 or wave-2 cloud had. Existing flavors stay public.

Revision ID: compute_0002
Revises: compute_0001
Create Date: 2026-12-02 11:00:00
"""

import json

import sqlalchemy as sa
from alembic import op


revision = 'compute_0002'
down_revision = 'compute_0001'
branch_labels = None
depends_on = 'project_0001'


def upgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('project_id', sa.String(length=255), nullable=False,
                                      server_default='admin'))
        batch_op.add_column(sa.Column('user_id', sa.String(length=255), nullable=False,
                                      server_default='admin'))
        batch_op.add_column(sa.Column('vcpus', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('memory_mb', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.create_index(batch_op.f('ix_instances_project_id'), ['project_id'],
                              unique=False)
    instances = sa.table('instances', sa.column('uuid', sa.String), sa.column('flavor', sa.JSON),
                         sa.column('vcpus', sa.Integer), sa.column('memory_mb', sa.Integer))
    conn = op.get_bind()
    for uuid, flavor in conn.execute(sa.select(instances.c.uuid, instances.c.flavor)).all():
        data = json.loads(flavor) if isinstance(flavor, str) else (flavor or {})
        conn.execute(instances.update().where(instances.c.uuid == uuid).values(
            vcpus=int(data.get('vcpus', 0)), memory_mb=int(data.get('ram_mb', 0))))
    with op.batch_alter_table('flavors', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_public', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
    op.create_table('flavor_projects',
    sa.Column('flavor_id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['flavor_id'], ['flavors.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('flavor_id', 'project_id')
    )
    with op.batch_alter_table('server_groups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('project_id', sa.String(length=255), nullable=False,
                                      server_default='admin'))
        batch_op.add_column(sa.Column('user_id', sa.String(length=255), nullable=False,
                                      server_default='admin'))
        batch_op.create_index(batch_op.f('ix_server_groups_project_id'), ['project_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('server_groups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_server_groups_project_id'))
        batch_op.drop_column('user_id')
        batch_op.drop_column('project_id')
    op.drop_table('flavor_projects')
    with op.batch_alter_table('flavors', schema=None) as batch_op:
        batch_op.drop_column('is_public')
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instances_project_id'))
        batch_op.drop_column('memory_mb')
        batch_op.drop_column('vcpus')
        batch_op.drop_column('user_id')
        batch_op.drop_column('project_id')
