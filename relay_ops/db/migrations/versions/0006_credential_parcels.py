"""grouped parcels: a pickup credential covers several parcels; recipient keys

Revision ID: 0006_credential_parcels
Revises: 0005_snapshot_waiting
Create Date: 2026-11-27 00:30:00

Every existing credential covers its one parcel, so the backfill copies ``parcel_id``.
Parcels already on hand get no recipient keys (computing them needs the pepper, which a
migration does not hold): they are not grouped with later parcels, which is what they were
told anyway.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006_credential_parcels'
down_revision: str | None = '0005_snapshot_waiting'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('credential_parcels',
    sa.Column('credential_id', sa.Integer(), nullable=False),
    sa.Column('parcel_id', sa.Integer(), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['credential_id'], ['pickup_credentials.id'], name=op.f('fk_credential_parcels_credential_id_pickup_credentials'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['parcel_id'], ['parcels.id'], name=op.f('fk_credential_parcels_parcel_id_parcels'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('credential_id', 'parcel_id', name=op.f('pk_credential_parcels'))
    )
    with op.batch_alter_table('credential_parcels', schema=None) as batch_op:
        batch_op.create_index('ix_credential_parcels_parcel', ['parcel_id'], unique=False)
    with op.batch_alter_table('parcels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recipient_phone_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('recipient_email_key', sa.String(length=64), nullable=True))
    op.execute(
        "INSERT INTO credential_parcels (credential_id, parcel_id, added_at) "
        "SELECT id, parcel_id, created_at FROM pickup_credentials"
    )


def downgrade() -> None:
    # Going down loses the grouping: each credential keeps only its first parcel.
    with op.batch_alter_table('parcels', schema=None) as batch_op:
        batch_op.drop_column('recipient_email_key')
        batch_op.drop_column('recipient_phone_key')
    with op.batch_alter_table('credential_parcels', schema=None) as batch_op:
        batch_op.drop_index('ix_credential_parcels_parcel')
    op.drop_table('credential_parcels')
