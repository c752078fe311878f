"""season capacity and adaptive holding: temporary shelves (locations valid for a period),
the holding rule and the reminder lead decided at check-in

Revision ID: 0015_season_capacity
Revises: 0014_locker_outbound
Create Date: 2026-12-05 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015_season_capacity'
down_revision: str | None = '0014_locker_outbound'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('locations') as batch:
        batch.add_column(sa.Column('valid_from', sa.Date(), nullable=True))
        batch.add_column(sa.Column('valid_until', sa.Date(), nullable=True))
    with op.batch_alter_table('parcels') as batch:
        batch.add_column(sa.Column('holding_rule', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('reminder_before_hours', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('parcels') as batch:
        batch.drop_column('reminder_before_hours')
        batch.drop_column('holding_rule')
    with op.batch_alter_table('locations') as batch:
        batch.drop_column('valid_until')
        batch.drop_column('valid_from')
