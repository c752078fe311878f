"""outbound parcels: carriers' label networks, the sites they collect at, sent parcels;
the services a site offers (existing sites: receive, and locker for lockers)

Revision ID: 0011_outbound
Revises: 0010_fast_path
Create Date: 2026-12-05 03:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011_outbound'
down_revision: str | None = '0010_fast_path'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('sites') as batch:
        batch.add_column(sa.Column('services', sa.JSON(), nullable=False, server_default='[]'))
    # Bare literals (no CASE): PostgreSQL casts an untyped literal to json, not a text CASE.
    op.execute("""UPDATE sites SET services = '["receive", "locker"]' WHERE kind = 'locker'""")
    op.execute("""UPDATE sites SET services = '["receive"]' WHERE kind <> 'locker'""")
    with op.batch_alter_table('carriers') as batch:
        batch.add_column(sa.Column('label_networks', sa.JSON(), nullable=False,
                                   server_default='[]'))
    op.create_table('carrier_sites',
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('carrier_id', sa.Integer(), nullable=False),
    sa.Column('collection_delay_hours', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['carrier_id'], ['carriers.id'], name=op.f('fk_carrier_sites_carrier_id_carriers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_carrier_sites_site_id_sites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('site_id', 'carrier_id', name=op.f('pk_carrier_sites'))
    )
    op.create_table('outbound_parcels',
    sa.Column('parcel_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=8), nullable=False),
    sa.Column('return_of_parcel_id', sa.Integer(), nullable=True),
    sa.Column('collect_by', sa.DateTime(timezone=True), nullable=False),
    sa.Column('overdue_since', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['parcel_id'], ['parcels.id'], name=op.f('fk_outbound_parcels_parcel_id_parcels'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['return_of_parcel_id'], ['parcels.id'], name=op.f('fk_outbound_parcels_return_of_parcel_id_parcels'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('parcel_id', name=op.f('pk_outbound_parcels'))
    )
    op.create_index('ix_outbound_parcels_collect_by', 'outbound_parcels', ['collect_by'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_outbound_parcels_collect_by', table_name='outbound_parcels')
    op.drop_table('outbound_parcels')
    op.drop_table('carrier_sites')
    with op.batch_alter_table('carriers') as batch:
        batch.drop_column('label_networks')
    with op.batch_alter_table('sites') as batch:
        batch.drop_column('services')
