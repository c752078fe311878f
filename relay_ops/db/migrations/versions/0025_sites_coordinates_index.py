"""the sites' coordinates indexed: the reroute planner reads the sites in a box around a full
site, not the whole network (issue 16)

Revision ID: 0025_sites_coordinates_index
Revises: 0024_drop_learned_parameters
Create Date: 2026-12-06 23:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0025_sites_coordinates_index'
down_revision: str | None = '0024_drop_learned_parameters'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_sites_latitude_longitude', 'sites', ['latitude', 'longitude'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_sites_latitude_longitude', table_name='sites')
