"""oracle: a tracking number is unique per carrier, not network-wide (issue 13.8)

Revision ID: 0018_oracle
Revises: 0017_reservations
Create Date: 2026-12-06 02:40:00

Network-wide uniqueness told a carrier whether another carrier held a number (its manifest
was refused). Now each carrier has its own numbers; parcels of no carrier (registered
unannounced without one, producers' orders) stay unique among themselves through a partial
index. Going down fails if two carriers share a number, rather than dropping a parcel.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018_oracle'
down_revision: str | None = '0017_reservations'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NO_CARRIER = "carrier_id IS NULL"


def upgrade() -> None:
    with op.batch_alter_table('parcels') as batch:
        batch.drop_constraint('uq_parcels_tracking_number', type_='unique')
        batch.create_unique_constraint('uq_parcels_tracking_number_carrier_id',
                                       ['tracking_number', 'carrier_id'])
    op.create_index('uq_parcels_tracking_number_no_carrier', 'parcels', ['tracking_number'],
                    unique=True, postgresql_where=sa.text(NO_CARRIER),
                    sqlite_where=sa.text(NO_CARRIER))


def downgrade() -> None:
    op.drop_index('uq_parcels_tracking_number_no_carrier', table_name='parcels')
    with op.batch_alter_table('parcels') as batch:
        batch.drop_constraint('uq_parcels_tracking_number_carrier_id', type_='unique')
        batch.create_unique_constraint('uq_parcels_tracking_number', ['tracking_number'])
