"""producers (short circuits): producer accounts and their API keys, producers' orders beside
their parcel rows, refrigerated shelf locations

Revision ID: 0013_producers
Revises: 0012_home_delivery
Create Date: 2026-12-05 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013_producers'
down_revision: str | None = '0012_home_delivery'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('producers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_producers')),
    sa.UniqueConstraint('code', name=op.f('uq_producers_code'))
    )
    op.create_table('producer_orders',
    sa.Column('parcel_id', sa.Integer(), nullable=False),
    sa.Column('producer_id', sa.Integer(), nullable=False),
    sa.Column('reference', sa.String(length=80), nullable=False),
    sa.Column('keep_cold', sa.Boolean(), nullable=False),
    sa.Column('holding_hours', sa.Integer(), nullable=True),
    sa.Column('sell_by', sa.DateTime(timezone=True), nullable=True),
    sa.Column('announced_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['parcel_id'], ['parcels.id'], name=op.f('fk_producer_orders_parcel_id_parcels'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['producer_id'], ['producers.id'], name=op.f('fk_producer_orders_producer_id_producers')),
    sa.PrimaryKeyConstraint('parcel_id', name=op.f('pk_producer_orders')),
    sa.UniqueConstraint('producer_id', 'reference', name=op.f('uq_producer_orders_producer_id'))
    )
    with op.batch_alter_table('api_tokens') as batch:
        batch.add_column(sa.Column('producer_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(batch.f('fk_api_tokens_producer_id_producers'), 'producers',
                                 ['producer_id'], ['id'], ondelete='CASCADE')
    with op.batch_alter_table('locations') as batch:
        batch.add_column(sa.Column('refrigerated', sa.Boolean(), nullable=False,
                                   server_default=sa.text('false')))


def downgrade() -> None:
    with op.batch_alter_table('locations') as batch:
        batch.drop_column('refrigerated')
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_constraint(batch.f('fk_api_tokens_producer_id_producers'), type_='foreignkey')
        batch.drop_column('producer_id')
    op.drop_table('producer_orders')
    op.drop_table('producers')
