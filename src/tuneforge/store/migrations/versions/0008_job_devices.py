"""evaluations and deployments keep the devices they hold, as tasks do: one ledger of who holds which GPU

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 08:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

HOLDING_TABLES = ('evaluations', 'deployments')


def upgrade() -> None:
    for table in HOLDING_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            # rows from before held no device: an empty list, not NULL, so readers need no special case
            batch_op.add_column(sa.Column('devices', sa.JSON(), server_default='[]', nullable=False))


def downgrade() -> None:
    for table in HOLDING_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('devices')
