"""the parcel's firsts on its row: first attempt (and where), first check-in, first
announcement, first ending, backfilled from parcel_events (issue 15, the forecast's learning
without a lookup per parcel)

Revision ID: 0020_first_attempt
Revises: 0019_locker17
Create Date: 2026-12-06 03:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

revision: str = '0020_first_attempt'
down_revision: str | None = '0019_locker17'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The actions as this revision knows them (services/history.py: ATTEMPTS, ENDINGS).
ATTEMPTS = "('check_in', 'check_in_refused')"
ENDINGS = "('pick_up', 'expire', 'refuse', 'declare_missing', 'declare_damaged')"


FIRST = ("(SELECT e.{column} FROM parcel_events e WHERE e.parcel_id = parcels.id"
         " AND e.action IN {actions} ORDER BY e.id LIMIT 1)")


def _first(column: str, actions: str) -> str:
    """The parcel's earliest event (by id, the order they were written) among ``actions``.
    Built from this module's constants only, never a request."""
    return FIRST.format(column=column, actions=actions)


COLUMNS = (
    ("first_attempt_at", "at", ATTEMPTS),
    ("first_attempt_site_id", "site_id", ATTEMPTS),
    ("first_check_in_at", "at", "('check_in')"),
    ("announced_at", "at", "('announce')"),
    ("ended_at", "at", ENDINGS),
    ("ending", "action", ENDINGS),
)
SETS = ", ".join(f"{name} = {_first(column, actions)}" for name, column, actions in COLUMNS)
BACKFILL = "UPDATE parcels SET " + SETS  # noqa: S608 (this module's constants)


def backfill(connection: Connection) -> None:
    """Each parcel's firsts from its events, in one statement on either database (also run
    by tests and benchmarks that write events directly)."""
    connection.execute(sa.text(BACKFILL))


def upgrade() -> None:
    with op.batch_alter_table('parcels') as batch:
        batch.add_column(sa.Column('first_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('first_attempt_site_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('first_check_in_at', sa.DateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column('announced_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('ending', sa.String(length=32), nullable=True))
        batch.create_foreign_key(batch.f('fk_parcels_first_attempt_site_id_sites'), 'sites',
                                 ['first_attempt_site_id'], ['id'])
        batch.create_index(batch.f('ix_parcels_first_attempt'),
                           ['first_attempt_site_id', 'first_attempt_at'])
        batch.create_index(batch.f('ix_parcels_site_first_check_in'), ['site_id', 'first_check_in_at'])
    backfill(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table('parcels') as batch:
        batch.drop_index(batch.f('ix_parcels_site_first_check_in'))
        batch.drop_index(batch.f('ix_parcels_first_attempt'))
        batch.drop_constraint(batch.f('fk_parcels_first_attempt_site_id_sites'),
                             type_='foreignkey')
        for column in ('ending', 'ended_at', 'announced_at', 'first_check_in_at',
                       'first_attempt_site_id', 'first_attempt_at'):
            batch.drop_column(column)
