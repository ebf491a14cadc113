"""stored graders; a metric point keeps the stage's own figures (rewards, margins, kl, reward mean and spread)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 23:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('task_metrics', schema=None) as batch_op:
        batch_op.add_column(sa.Column('extra', sa.JSON(), nullable=True))
    op.create_table('graders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sqlite_autoincrement=True
    )


def downgrade() -> None:
    op.drop_table('graders')
    with op.batch_alter_table('task_metrics', schema=None) as batch_op:
        batch_op.drop_column('extra')
