"""locker links: a state snapshot waiting for an earlier boot's replay

Revision ID: 0005_snapshot_waiting
Revises: 0004_forecast
Create Date: 2026-11-27 00:35:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005_snapshot_waiting'
down_revision: str | None = '0004_forecast'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('locker_links') as batch_op:
        batch_op.add_column(sa.Column('snapshot_waiting_boot', sa.String(length=64),
                                      nullable=True))
        batch_op.add_column(sa.Column('snapshot_waiting_until', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('locker_links') as batch_op:
        batch_op.drop_column('snapshot_waiting_until')
        batch_op.drop_column('snapshot_waiting_boot')
