"""the forecast's flows: partial indexes on a site's sent parcels by deposit and its parcels
of no carrier (producers' orders) by check-in (issue 17, services/forecast_flows.py)

Revision ID: 0021_fc17
Revises: 0020_first_attempt
Create Date: 2026-12-06 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0021_fc17'
down_revision: str | None = '0020_first_attempt'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SENT = "direction = 'outbound'"
NO_CARRIER = "carrier_id IS NULL"


def upgrade() -> None:
    op.create_index('ix_parcels_sent_site_checked_in', 'parcels', ['site_id', 'checked_in_at'],
                    postgresql_where=sa.text(SENT), sqlite_where=sa.text(SENT))
    op.create_index('ix_parcels_no_carrier_site_first_check_in', 'parcels',
                    ['site_id', 'first_check_in_at'],
                    postgresql_where=sa.text(NO_CARRIER), sqlite_where=sa.text(NO_CARRIER))


def downgrade() -> None:
    op.drop_index('ix_parcels_no_carrier_site_first_check_in', table_name='parcels')
    op.drop_index('ix_parcels_sent_site_checked_in', table_name='parcels')
