"""evaluation jobs and their headline scores; models imported from an object store carry a status

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 00:35:50.024522
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=16), server_default='ready', nullable=False))
        batch_op.add_column(sa.Column('progress', sa.Float(), server_default='100', nullable=False))
        batch_op.add_column(sa.Column('origin', sa.String(length=4096), nullable=True))
        batch_op.add_column(sa.Column('error_message', sa.Text(), nullable=True))
    op.create_table('evaluations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('baseline', sa.String(length=4096), nullable=True),
    sa.Column('dataset', sa.String(length=4096), nullable=False),
    sa.Column('split', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('stage', sa.String(length=32), nullable=True),
    sa.Column('percentage', sa.Float(), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('job_dir', sa.String(length=4096), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('pid_started_at', sa.Float(), nullable=True),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('scores', sa.JSON(), nullable=False),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('finished_at', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluations_model_id'), ['model_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluations_model_id'))

    op.drop_table('evaluations')
    with op.batch_alter_table('models', schema=None) as batch_op:
        for column in ('error_message', 'origin', 'progress', 'status'):
            batch_op.drop_column(column)
