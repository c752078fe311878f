"""A parcel's firsts on its row say what its events say (issue 15).

The forecast's learning groups a site's parcels by columns of their rows (first attempt and
where, first check-in, first announcement, first ending) instead of looking up each one's
events. Those columns are written by the statements that write the events
(``history.keep_firsts``) and, for parcels from before them, by the migration
``0020_first_attempt``'s backfill: both must give what the events say, read here one by one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from relay_ops.db import migrate
from relay_ops.db.models import Parcel, ParcelEvent
from relay_ops.services import history
from tests.conftest import Clock
from tests.support import World, is_problem

FIRSTS = ("first_attempt_at", "first_attempt_site_id", "first_check_in_at", "announced_at",
          "ended_at", "ending")


def backfill_from_events(session: Session) -> None:
    """The migration's own backfill, run on the session's connection."""
    revision = ScriptDirectory(str(migrate.MIGRATIONS)).get_revision("0020_first_attempt")
    assert revision is not None
    revision.module.backfill(session.connection())


def firsts_from_events(session: Session, parcel_id: int) -> dict[str, Any]:
    """The parcel's firsts, read from its events one by one, in the order they were written."""
    found: dict[str, Any] = dict.fromkeys(FIRSTS)
    events = session.execute(select(ParcelEvent.action, ParcelEvent.at, ParcelEvent.site_id)
                             .where(ParcelEvent.parcel_id == parcel_id).order_by(ParcelEvent.id))
    for action, at, site_id in events:
        if action in history.ATTEMPTS and found["first_attempt_at"] is None:
            found.update(first_attempt_at=at, first_attempt_site_id=site_id)
        if action == "check_in" and found["first_check_in_at"] is None:
            found["first_check_in_at"] = at
        if action == "announce" and found["announced_at"] is None:
            found["announced_at"] = at
        if action in history.ENDINGS and found["ended_at"] is None:
            found.update(ended_at=at, ending=action)
    return found


def firsts_on_rows(session: Session) -> dict[int, dict[str, Any]]:
    return {parcel.id: {name: getattr(parcel, name) for name in FIRSTS}
            for parcel in session.scalars(select(Parcel).order_by(Parcel.id))}


def parcel_id(world: World, number: str) -> int:
    return int(world.carrier.get("/parcels", tracking_number=number).json["id"])


def test_check_in_refusal_announcement_and_pickup_keep_the_firsts_the_events_say(
        world: World, clock: Clock) -> None:
    start = clock.now
    # Checked in unannounced, then on a manifest: reconciled, with no announcement event.
    registered = world.check_in("ACME00000910", accept_unannounced=True, size_class="S")
    assert registered.status_code == 201
    reconciled = world.announce("ACME00000910", reference="R-late").json["parcels"][0]
    assert reconciled["reconciled"] is True
    # Five L places at the shop: five parcels checked in, the sixth turned away, twice.
    numbers = [f"ACME0000090{i}" for i in range(6)]
    assert world.announce(*numbers, size_class="L").status_code == 201
    clock.now += timedelta(hours=1)
    for number in numbers[:5]:
        assert world.check_in(number).status_code == 201
    clock.now += timedelta(hours=1)
    assert is_problem(world.check_in(numbers[5]), 409, "site-at-capacity")
    clock.now += timedelta(hours=1)
    assert is_problem(world.check_in(numbers[5]), 409, "site-at-capacity")
    # Announced again in another manifest: refused as a duplicate, the first announcement stays.
    again = world.announce(numbers[0], reference="R-again", size_class="L")
    assert again.json["parcels"][0]["status"] == "rejected"
    clock.now += timedelta(hours=1)
    code = world.code_of(parcel_id(world, numbers[0]))
    assert world.pick_up(code=code).status_code == 200
    clock.now += timedelta(hours=1)
    assert world.pick_up(code=code).status_code != 200  # a code is used once: no second ending

    refused, picked = parcel_id(world, numbers[5]), parcel_id(world, numbers[0])
    with world.ctx.db.read() as session:
        rows = firsts_on_rows(session)
        expected = {pid: firsts_from_events(session, pid) for pid in rows}
    assert rows == expected
    # The history the rows were compared with has each kind of first in it.
    assert rows[refused]["first_attempt_at"] == start + timedelta(hours=2)
    assert rows[refused]["first_attempt_site_id"] == world.shop_id
    assert rows[refused]["first_check_in_at"] is None
    assert rows[parcel_id(world, "ACME00000910")]["announced_at"] is None
    assert rows[parcel_id(world, "ACME00000910")]["first_check_in_at"] == start
    assert rows[picked]["announced_at"] == start
    assert rows[picked]["first_check_in_at"] == start + timedelta(hours=1)
    assert (rows[picked]["ended_at"], rows[picked]["ending"]) == (
        start + timedelta(hours=4), "pick_up")


def test_the_backfill_gives_the_firsts_the_events_say(world: World, clock: Clock) -> None:
    """Parcels from before the columns: the migration reads their firsts from their events."""
    numbers = [f"ACME0000092{i}" for i in range(6)]
    assert world.announce(*numbers, size_class="L").status_code == 201
    for number in numbers[:5]:
        clock.now += timedelta(minutes=10)
        assert world.check_in(number).status_code == 201
    assert is_problem(world.check_in(numbers[5]), 409, "site-at-capacity")
    assert world.pick_up(code=world.code_of(parcel_id(world, numbers[1]))).status_code == 200
    with world.ctx.db.transaction() as session:
        written = firsts_on_rows(session)
        session.execute(update(Parcel).values(dict.fromkeys(FIRSTS)))
    with world.ctx.db.transaction() as session:
        assert all(v is None for row in firsts_on_rows(session).values() for v in row.values())
        backfill_from_events(session)
    with world.ctx.db.read() as session:
        backfilled = firsts_on_rows(session)
        expected = {pid: firsts_from_events(session, pid) for pid in backfilled}
        assert session.scalar(text("SELECT count(*) FROM parcel_events")) > 10
    assert backfilled == expected == written
    assert {row["ending"] for row in backfilled.values()} == {None, "pick_up"}
    assert sum(row["first_check_in_at"] is not None for row in backfilled.values()) == 5
