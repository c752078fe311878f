"""a site's live pickup codes indexed by their issue time: the oldest one, which every pickup
by code alone asks, is one index entry, not a scan of the site's codes (issue 15)

Revision ID: 0026_live_codes_index
Revises: 0025_sites_coordinates_index
Create Date: 2026-12-07 05:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0026_live_codes_index'
down_revision: str | None = '0025_sites_coordinates_index'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE_CODE = "used_at IS NULL AND revoked_at IS NULL"


def upgrade() -> None:
    op.create_index('ix_pickup_credentials_live_site_created', 'pickup_credentials',
                    ['site_id', 'created_at'], unique=False,
                    postgresql_where=sa.text(LIVE_CODE), sqlite_where=sa.text(LIVE_CODE))


def downgrade() -> None:
    op.drop_index('ix_pickup_credentials_live_site_created', table_name='pickup_credentials')
