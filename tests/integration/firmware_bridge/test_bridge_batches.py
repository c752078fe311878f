"""The bridge applies a batch of events in one transaction without savepoints (issue 15); a
poisoned event is isolated on the retry path, and a batch committed but never acknowledged is
applied once when the locker sends it again.

The bridge here is fed the messages as its worker takes them from paho (signed by the
locker's own key), with no broker: what it acknowledges is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from locker_harness import unique_locker_id
from sqlalchemy import event, select

from firmware_bridge import protocol as p
from firmware_bridge.bridge import Bridge, BridgeSettings
from firmware_bridge.identity import LockerIdentity
from relay_ops.db.models import LockerAlert, LockerEventCursor
from relay_ops.services import locker_events, locker_registry
from relay_ops.services.context import Ctx
from relay_ops.services.principal import SYSTEM
from tests.support import World, provisioned

Message = tuple[str, bytes, int, int]


class Acks:
    """What a bridge acknowledged: PUBACKs (by message id) and end-to-end acks (by seq)."""

    def __init__(self) -> None:
        self.pubacks: list[int] = []
        self.end_to_end: list[int] = []

    def ack(self, mid: int, _qos: int) -> None:
        self.pubacks.append(mid)

    def published(self, _topic: str, payload: bytes) -> None:
        envelope = p.receive(_topic, payload).envelope
        if isinstance(envelope.body, p.AckBody):
            self.end_to_end.append(envelope.body.seq)


def bridge_with(ctx: Ctx, acks: Acks | None) -> Bridge:
    """A bridge as its worker runs; `acks` None: one that dies before acknowledging."""
    bridge = Bridge(ctx, "127.0.0.1", 1, BridgeSettings())
    if acks is not None:
        bridge._client = acks  # type: ignore[assignment]
        bridge._publish = acks.published  # type: ignore[method-assign]
        bridge._connected.set()
    return bridge


class SignedLocker:
    def __init__(self, world: World) -> None:
        self.code = unique_locker_id("P")
        self.site_id = locker_registry.register_locker(world.ctx, SYSTEM, {
            "code": self.code, "name": "Casier", "locker_model": "mini-6", "address": "Place",
            "postcode": "44440", "city": "Riaillé", "latitude": 47.5, "longitude": -1.3})["id"]
        self.identity: LockerIdentity = provisioned(world.ctx, self.site_id)
        self.boot, self.seq = "boot-1", 0

    def messages(self, *bodies: p.EventBody) -> list[Message]:
        out = []
        for body in bodies:
            self.seq += 1
            envelope = p.make_event(self.code, self.boot, self.seq, body)
            out.append((p.evt_topic(self.code), self.identity.sign(envelope), 100 + self.seq,
                        1))
        return out


def left_open(door: int) -> p.DoorLeftOpen:
    return p.DoorLeftOpen(compartment=door, open_seconds=120, opened_for="pickup")


def alerts(world: World, site_id: int) -> dict[tuple[str, int | None], tuple[int, str]]:
    with world.ctx.db.read() as session:
        return {(a.kind, a.compartment): (a.occurrences, a.detail or "")
                for a in session.scalars(select(LockerAlert).where(
                    LockerAlert.site_id == site_id))}


def cursor(world: World, locker: SignedLocker) -> int:
    with world.ctx.db.read() as session:
        return int(session.scalar(select(LockerEventCursor.applied_seq).where(
            LockerEventCursor.site_id == locker.site_id,
            LockerEventCursor.boot_id == locker.boot)) or 0)


def poison_by_bug(real: Callable[..., None]) -> Callable[..., None]:
    def handler(ctx: Ctx, session: Any, site: Any, link: Any, body: dict[str, Any],
                *rest: Any) -> None:
        if body["code"] == "poison":
            raise RuntimeError("a handler's bug")
        real(ctx, session, site, link, body, *rest)
    return handler


def poison_by_constraint(real: Callable[..., None]) -> Callable[..., None]:
    """Rows a constraint refuses: the failure comes at a flush, maybe the batch's last."""
    def handler(ctx: Ctx, session: Any, site: Any, link: Any, body: dict[str, Any],
                *rest: Any) -> None:
        if body["code"] == "poison":
            session.add(LockerAlert(site_id=10**9, kind="no_such_site", occurrences=1))
            return
        real(ctx, session, site, link, body, *rest)
    return handler


@pytest.mark.parametrize("poison", [poison_by_bug, poison_by_constraint])
def test_a_poisoned_event_in_a_batch_is_alerted_and_acknowledged_and_its_neighbours_applied_once(
        world: World, ctx: Ctx, monkeypatch: pytest.MonkeyPatch,
        poison: Callable[[Callable[..., None]], Callable[..., None]]) -> None:
    monkeypatch.setitem(locker_events.HANDLERS, "fault",
                        poison(locker_events.HANDLERS["fault"]))
    locker = SignedLocker(world)
    batch = locker.messages(left_open(1), left_open(2), p.Fault(code="poison"),
                            left_open(4), p.Fault(code="jammed_lock", compartment=5))
    acks = Acks()
    bridge_with(ctx, acks)._handle_batch(batch)

    found = alerts(world, locker.site_id)
    for door in (1, 2, 4):
        assert found[("door_left_open", door)][0] == 1  # applied once, not again on the retry
    assert found[("fault_jammed_lock", 5)][0] == 1
    occurrences, detail = found[("event_not_applied", None)]
    assert occurrences == 1 and detail.startswith("fault seq 3:")
    assert ("no_such_site", None) not in found
    assert cursor(world, locker) == 5
    assert acks.end_to_end == [5]  # the poisoned one is acknowledged with its neighbours
    assert sorted(acks.pubacks) == [m for _t, _p, m, _q in batch]


def test_a_batch_committed_but_never_acknowledged_is_applied_once_when_sent_again(
        world: World, ctx: Ctx) -> None:
    locker = SignedLocker(world)
    batch = locker.messages(left_open(1), p.Fault(code="jammed_lock", compartment=2),
                            left_open(3))
    bridge_with(ctx, None)._handle_batch(batch)  # committed; the process dies before any ack
    assert cursor(world, locker) == 3

    restarted, acks = bridge_with(ctx, Acks()), None
    acks = restarted._client
    more = locker.messages(left_open(4))
    restarted._handle_batch(batch + more)  # the locker resends what it holds, and goes on

    found = alerts(world, locker.site_id)
    assert {key: n for key, (n, _d) in found.items()} == {
        ("door_left_open", 1): 1, ("fault_jammed_lock", 2): 1, ("door_left_open", 3): 1,
        ("door_left_open", 4): 1}
    assert cursor(world, locker) == 4
    assert isinstance(acks, Acks) and acks.end_to_end == [4]
    assert len(acks.pubacks) == 4


def test_repeated_alerts_in_one_batch_count_on_one_open_alert(world: World, ctx: Ctx) -> None:
    locker = SignedLocker(world)
    bridge_with(ctx, Acks())._handle_batch(locker.messages(*[left_open(2)] * 7))
    bridge_with(ctx, Acks())._handle_batch(locker.messages(*[left_open(2)] * 3))
    assert {key: n for key, (n, _d) in alerts(world, locker.site_id).items()} == {
        ("door_left_open", 2): 10}


def test_a_batch_costs_the_same_few_statements_whatever_its_length(world: World,
                                                                   ctx: Ctx) -> None:
    """Issue 15: a savepoint, the effect, the cursor's and the link's UPDATE for each event
    made the bridge twenty times slower than a bare consumer. A batch is now the locker's row,
    link and cursor, its effects, one UPDATE of the cursor and one of the link: 20 repeats of
    one alert cost what 2 do."""
    locker = SignedLocker(world)

    def statements(count: int) -> int:
        first = locker.seq + 1
        locker.seq += count
        events = [locker_events.LockerEvent(seq, "fault", {"code": "bench", "compartment": 1},
                                            ctx.now()) for seq in range(first, first + count)]
        executed: list[str] = []

        def note(*args: Any) -> None:
            executed.append(args[2])

        event.listen(ctx.db.engine, "before_cursor_execute", note)
        try:
            assert locker_events.apply_events(ctx, locker.code, locker.boot, events).applied \
                == count
        finally:
            event.remove(ctx.db.engine, "before_cursor_execute", note)
        return len(executed)

    statements(1)  # the cursor's row and the open alert exist from now on
    assert statements(2) == statements(20) <= 8
