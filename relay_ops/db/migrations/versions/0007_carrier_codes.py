"""carrier codes rotated: the generation of each carrier's offline code at a locker

Revision ID: 0007_carrier_codes
Revises: 0006_credential_parcels
Create Date: 2026-11-27 04:45:00

No row means generation 0: the code every carrier had before, unchanged.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007_carrier_codes'
down_revision: str | None = '0006_credential_parcels'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('carrier_codes',
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('carrier_id', sa.Integer(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('rotated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['carrier_id'], ['carriers.id'], name=op.f('fk_carrier_codes_carrier_id_carriers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_carrier_codes_site_id_sites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('site_id', 'carrier_id', name=op.f('pk_carrier_codes'))
    )


def downgrade() -> None:
    op.drop_table('carrier_codes')
