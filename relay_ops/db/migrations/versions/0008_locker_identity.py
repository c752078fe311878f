"""locker identities: event key, broker login, command counter; alerts counted, not repeated

Revision ID: 0008_locker_identity
Revises: 0007_carrier_codes
Create Date: 2026-12-04 23:00:00

Lockers registered before this revision have no event key: their events are refused until
they are provisioned (`relay-ops locker provision CODE`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008_locker_identity'
down_revision: str | None = '0007_carrier_codes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('locker_links') as batch:
        batch.add_column(sa.Column('event_key', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('identity_generation', sa.Integer(), nullable=False,
                                   server_default='0'))
        batch.add_column(sa.Column('provisioned_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('broker_username', sa.String(length=80), nullable=True))
        batch.add_column(sa.Column('broker_password_hash', sa.String(length=200),
                                   nullable=True))
        batch.add_column(sa.Column('command_counter', sa.BigInteger(), nullable=False,
                                   server_default='0'))
    with op.batch_alter_table('locker_alerts') as batch:
        batch.add_column(sa.Column('occurrences', sa.Integer(), nullable=False,
                                   server_default='1'))
        batch.add_column(sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('locker_alerts') as batch:
        batch.drop_column('last_seen_at')
        batch.drop_column('occurrences')
    with op.batch_alter_table('locker_links') as batch:
        for column in ('command_counter', 'broker_password_hash', 'broker_username',
                       'revoked_at', 'provisioned_at', 'identity_generation', 'event_key'):
            batch.drop_column(column)
