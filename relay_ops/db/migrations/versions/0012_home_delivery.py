"""home delivery: the days and area a site delivers, residents' delivery requests

Revision ID: 0012_home_delivery
Revises: 0011_outbound
Create Date: 2026-12-05 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012_home_delivery'
down_revision: str | None = '0011_outbound'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('home_delivery_offers',
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('days', sa.JSON(), nullable=False),
    sa.Column('area', sa.String(length=300), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_home_delivery_offers_site_id_sites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('site_id', name=op.f('pk_home_delivery_offers'))
    )
    op.create_table('home_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('parcel_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('requested_by', sa.String(length=8), nullable=False),
    sa.Column('requested_by_actor', sa.String(length=60), nullable=False),
    sa.Column('consent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('courier_kind', sa.String(length=10), nullable=False),
    sa.Column('courier_name', sa.String(length=200), nullable=True),
    sa.Column('link_nonce', sa.String(length=64), nullable=True),
    sa.Column('link_hash', sa.String(length=64), nullable=True),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parcel_id'], ['parcels.id'], name=op.f('fk_home_deliveries_parcel_id_parcels'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_home_deliveries_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_home_deliveries')),
    sa.UniqueConstraint('link_hash', name=op.f('uq_home_deliveries_link_hash'))
    )
    op.create_index('ix_home_deliveries_parcel', 'home_deliveries', ['parcel_id'], unique=False)
    op.create_index('ix_home_deliveries_site_status_day', 'home_deliveries',
                    ['site_id', 'status', 'day'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_home_deliveries_site_status_day', table_name='home_deliveries')
    op.drop_index('ix_home_deliveries_parcel', table_name='home_deliveries')
    op.drop_table('home_deliveries')
    op.drop_table('home_delivery_offers')
