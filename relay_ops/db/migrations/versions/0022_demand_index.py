"""the season's shape: a demand factor per day, declared network-wide (issue 16,
domain/demand_index.py)

Revision ID: 0022_demand_index
Revises: 0021_fc17
Create Date: 2026-12-06 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0022_demand_index'
down_revision: str | None = '0021_fc17'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('demand_index',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('factor', sa.Float(), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=True),
    sa.Column('declared_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_demand_index'))
    )


def downgrade() -> None:
    op.drop_table('demand_index')
