"""compute: keypairs (SSH public keys of a user), and the key and user data of servers

Servers made before keep no key and no user data (NULL).

Revision ID: compute_0004
Revises: compute_0003
Create Date: 2026-12-03 17:00:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'compute_0004'
down_revision = 'compute_0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('key_pairs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('project_id', sa.String(length=255), server_default='admin', nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('public_key', sa.Text(), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'name', name='uniq_key_pairs0user_id0name')
    )
    with op.batch_alter_table('key_pairs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_key_pairs_project_id'), ['project_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_key_pairs_user_id'), ['user_id'], unique=False)
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_name', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('key_data', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('user_data', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('user_data')
        batch_op.drop_column('key_data')
        batch_op.drop_column('key_name')
    with op.batch_alter_table('key_pairs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_key_pairs_user_id'))
        batch_op.drop_index(batch_op.f('ix_key_pairs_project_id'))
    op.drop_table('key_pairs')
