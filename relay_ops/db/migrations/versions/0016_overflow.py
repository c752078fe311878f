"""overflow: storage sites with a season, the operator's no-room policies per carrier and
territory, and the decision taken for each parcel no site within reach had room for

Revision ID: 0016_overflow
Revises: 0015_season_capacity
Create Date: 2026-12-05 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016_overflow'
down_revision: str | None = '0015_season_capacity'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('sites') as batch:
        batch.add_column(sa.Column('season_from', sa.Date(), nullable=True))
        batch.add_column(sa.Column('season_to', sa.Date(), nullable=True))
    op.create_table('no_room_policies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope_key', sa.String(length=60), nullable=False),
    sa.Column('carrier_id', sa.Integer(), nullable=True),
    sa.Column('site_id', sa.Integer(), nullable=True),
    sa.Column('area', sa.String(length=12), nullable=True),
    sa.Column('steps', sa.JSON(), nullable=False),
    sa.Column('home_size_classes', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['carrier_id'], ['carriers.id'], name=op.f('fk_no_room_policies_carrier_id_carriers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_no_room_policies_site_id_sites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_no_room_policies')),
    sa.UniqueConstraint('scope_key', name=op.f('uq_no_room_policies_scope_key'))
    )
    op.create_table('no_room_decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('parcel_id', sa.Integer(), nullable=False),
    sa.Column('carrier_id', sa.Integer(), nullable=True),
    sa.Column('policy_id', sa.Integer(), nullable=True),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('step', sa.String(length=10), nullable=False),
    sa.Column('to_site_id', sa.Integer(), nullable=True),
    sa.Column('hold_until', sa.Date(), nullable=True),
    sa.Column('tried', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['carrier_id'], ['carriers.id'], name=op.f('fk_no_room_decisions_carrier_id_carriers')),
    sa.ForeignKeyConstraint(['parcel_id'], ['parcels.id'], name=op.f('fk_no_room_decisions_parcel_id_parcels'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['policy_id'], ['no_room_policies.id'], name=op.f('fk_no_room_decisions_policy_id_no_room_policies'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_no_room_decisions_site_id_sites')),
    sa.ForeignKeyConstraint(['to_site_id'], ['sites.id'], name=op.f('fk_no_room_decisions_to_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_no_room_decisions'))
    )
    op.create_index('ix_no_room_decisions_site_day', 'no_room_decisions', ['site_id', 'day'])
    op.create_index('ix_no_room_decisions_carrier_day', 'no_room_decisions',
                    ['carrier_id', 'day'])
    op.create_index('ix_no_room_decisions_parcel', 'no_room_decisions', ['parcel_id'])


def downgrade() -> None:
    op.drop_index('ix_no_room_decisions_parcel', table_name='no_room_decisions')
    op.drop_index('ix_no_room_decisions_carrier_day', table_name='no_room_decisions')
    op.drop_index('ix_no_room_decisions_site_day', table_name='no_room_decisions')
    op.drop_table('no_room_decisions')
    op.drop_table('no_room_policies')
    with op.batch_alter_table('sites') as batch:
        batch.drop_column('season_to')
        batch.drop_column('season_from')
