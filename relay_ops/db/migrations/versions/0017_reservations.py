"""reservations: a place held at a shop for each rerouted parcel on its day (issue 16.1)

Revision ID: 0017_reservations
Revises: 0016_overflow
Create Date: 2026-12-05 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017_reservations'
down_revision: str | None = '0016_overflow'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('place_reservations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('parcel_id', sa.Integer(), nullable=False),
    sa.Column('proposal_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['parcel_id'], ['parcels.id'], name=op.f('fk_place_reservations_parcel_id_parcels'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['proposal_id'], ['reroute_proposals.id'], name=op.f('fk_place_reservations_proposal_id_reroute_proposals'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_place_reservations_site_id_sites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_place_reservations'))
    )
    op.create_index('ix_place_reservations_parcel_id', 'place_reservations',
                    ['parcel_id', 'status'], unique=False)
    op.create_index('ix_place_reservations_site_id', 'place_reservations',
                    ['site_id', 'status', 'day'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_place_reservations_site_id', table_name='place_reservations')
    op.drop_index('ix_place_reservations_parcel_id', table_name='place_reservations')
    op.drop_table('place_reservations')
