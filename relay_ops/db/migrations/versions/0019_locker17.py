"""carrier rounds: the times of day a carrier passes at a site, for its per-round pickup
lists (issue 17, docs/outbound.md "The carrier's round")

Revision ID: 0019_locker17
Revises: 0018_oracle
Create Date: 2026-12-06 02:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0019_locker17'
down_revision: str | None = '0018_oracle'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('carrier_sites') as batch:
        batch.add_column(sa.Column('round_times', sa.JSON(), nullable=False,
                                   server_default='[]'))


def downgrade() -> None:
    with op.batch_alter_table('carrier_sites') as batch:
        batch.drop_column('round_times')
