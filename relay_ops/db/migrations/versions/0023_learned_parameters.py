"""parameters the forecast learns over the whole network (the unannounced share), kept by
the periodic sweep (issue 16, services/forecast_learning.learn_network)

Revision ID: 0023_learned_parameters
Revises: 0022_demand_index
Create Date: 2026-12-06 18:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0023_learned_parameters'
down_revision: str | None = '0022_demand_index'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('learned_parameters',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('samples', sa.Integer(), nullable=False),
    sa.Column('learned_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_learned_parameters'))
    )


def downgrade() -> None:
    op.drop_table('learned_parameters')
