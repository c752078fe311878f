"""unannounced scans: parcels scanned at a shop that no carrier announced, until decided

Revision ID: 0009_unannounced_scans
Revises: 0008_locker_identity
Create Date: 2026-12-04 22:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009_unannounced_scans'
down_revision: str | None = '0008_locker_identity'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('unannounced_scans',
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('tracking_number', sa.String(length=35), nullable=False),
    sa.Column('scanned_by', sa.Integer(), nullable=True),
    sa.Column('scanned_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['scanned_by'], ['users.id'], name=op.f('fk_unannounced_scans_scanned_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_unannounced_scans_site_id_sites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('site_id', 'tracking_number', name=op.f('pk_unannounced_scans'))
    )


def downgrade() -> None:
    op.drop_table('unannounced_scans')
