"""locker outbound: compartments that may be marked refrigerated (producers' "keep cold"
orders go to those only); sent parcels and producers' orders at lockers use the existing
parcel, credential and compartment rows

Revision ID: 0014_locker_outbound
Revises: 0013_producers
Create Date: 2026-12-05 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014_locker_outbound'
down_revision: str | None = '0013_producers'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('compartments', schema=None) as batch:
        batch.add_column(sa.Column('refrigerated', sa.Boolean(), nullable=False,
                                   server_default=sa.text('false')))


def downgrade() -> None:
    with op.batch_alter_table('compartments', schema=None) as batch:
        batch.drop_column('refrigerated')
