"""the network's unannounced share is no longer learned: a full shop's check-in now keeps the
unannounced parcels it refuses, so the forecast counts them instead of guessing them (issue 16)

Revision ID: 0024_drop_learned_parameters
Revises: 0023_learned_parameters
Create Date: 2026-12-06 20:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0024_drop_learned_parameters'
down_revision: str | None = '0023_learned_parameters'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_table('learned_parameters')


def downgrade() -> None:
    op.create_table('learned_parameters',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('samples', sa.Integer(), nullable=False),
    sa.Column('learned_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_learned_parameters'))
    )
