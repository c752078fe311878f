"""fast path: a held-parcel counter per shelf location, partial indexes for grouping

Revision ID: 0010_fast_path
Revises: 0009_unannounced_scans
Create Date: 2026-12-05 03:50:00

The check-in's cost no longer grows with the parcels on hand (issue 15): the shelf policy
reads ``locations.held`` (kept by ``history.apply`` in the transaction that moves a parcel on
or off a shelf) instead of counting every held parcel of the shop, and the grouping lookup
(a ready parcel here for the same recipient) reads two partial indexes of ready parcels.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010_fast_path'
down_revision: str | None = '0009_unannounced_scans'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READY_WITH_PHONE_KEY = "state = 'ready_for_pickup' AND recipient_phone_key IS NOT NULL"
READY_WITH_EMAIL_KEY = "state = 'ready_for_pickup' AND recipient_email_key IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table('locations') as batch:
        batch.add_column(sa.Column('held', sa.Integer(), server_default='0', nullable=False))
    op.execute(
        "UPDATE locations SET held = (SELECT count(*) FROM parcels WHERE parcels.location_id ="
        " locations.id AND parcels.state IN"
        " ('ready_for_pickup', 'expired', 'awaiting_collection', 'damaged'))"
    )
    op.create_index('ix_parcels_ready_phone_key', 'parcels', ['site_id', 'recipient_phone_key'],
                    postgresql_where=sa.text(READY_WITH_PHONE_KEY),
                    sqlite_where=sa.text(READY_WITH_PHONE_KEY))
    op.create_index('ix_parcels_ready_email_key', 'parcels', ['site_id', 'recipient_email_key'],
                    postgresql_where=sa.text(READY_WITH_EMAIL_KEY),
                    sqlite_where=sa.text(READY_WITH_EMAIL_KEY))


def downgrade() -> None:
    op.drop_index('ix_parcels_ready_email_key', table_name='parcels')
    op.drop_index('ix_parcels_ready_phone_key', table_name='parcels')
    with op.batch_alter_table('locations') as batch:
        batch.drop_column('held')
