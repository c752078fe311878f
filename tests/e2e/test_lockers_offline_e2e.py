"""Offline first, end to end (issue 6, "Done means"): one scripted locker day played twice
through real processes (gunicorn, the bridge, the simulated locker) over a Mosquitto of the
test's own: once online, once with the broker stopped while the residents pick up by QR code and
PIN and bad credentials are refused, and the carrier, with the code of its own the API gives it,
takes an expired parcel back and deposits a parcel announced for the day into the door reserved
for it; then restarted so the locker replays its journal. Online the carrier does the same with
its app. The backend's final state, as a projection without ids and times, is the same; no event
is lost or doubled."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from relay_ops.db.models import LockerAlert, Notification, Parcel, ParcelEvent, PickupCredential
from relay_ops.services import expiry
from tests.e2e.locker_stack import Stack, wait_until
from tests.e2e.test_lockers_e2e import decode_qr, drop
from tests.integration.firmware_bridge.locker_harness import ProductionMosquitto

pytestmark = pytest.mark.slow

QR, PIN, SPARE, KEPT = "DAYQR0000001", "DAYPIN000001", "DAYSPARE0001", "DAYKEPT00001"
# the carrier's part: a parcel left past its deadline, one announced for today
EXPIRING, AHEAD = "DAYEXPIRING1", "DAYAHEAD0001"
NUMBERS = (QR, PIN, SPARE, KEPT, EXPIRING, AHEAD)
# How the backend learnt that a door may open for a pickup: online it decided itself
# (`locker_door_requested`), offline the locker decided and journaled it
# (`offline_pickup_verified`). One fact, two records by design; the projection names it once.
AUTHORISED = {"locker_door_requested": "door_authorised",
              "offline_pickup_verified": "door_authorised"}
# The carrier's doors: online its app asked the backend, which opened them (no parcel event);
# offline the locker decided from the synced reservation and journaled it (these records). The
# facts compared are the deposit (check_in) and the collection (collect), once each.
LOCKER_DECIDED_ONLY = {"offline_deposit_verified", "offline_collection_verified"}


def answer_on_screen(stack: Stack, command: str, timeout: float = 15.0) -> str:
    """Type or scan, then wait for the locker's screen to say something new."""
    before = stack.locker.do("state")
    assert stack.locker.do(command) == "ok"

    def changed() -> str | None:
        screen = json.loads(stack.locker.do("state"))["screen"]
        return screen[-1] if screen != json.loads(before)["screen"] else None

    return str(wait_until(changed, timeout, f"screen answer to {command[:20]}"))


def door_opens(stack: Stack, door: int, what: str) -> None:
    """Wait for the door to open and for the screen to say so: online, the agent writes the
    screen after the door's pulse, and the next answer_on_screen must not read that line."""

    def said() -> bool:
        screen = json.loads(stack.locker.do("state"))["screen"]
        return bool(screen) and screen[-1].startswith(f"compartment {door} opens")

    wait_until(lambda: stack.locker.door_open(door), 15, what)
    wait_until(said, 15, f"screen saying {what}")


def altered(token: str) -> str:
    """One character of the signed part changed, still valid base45."""
    i = len(token) // 2
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]


def expire(stack: Stack, number: str) -> None:
    """The holding period of `number` ran out (its deadline moved to the past), and the
    expiry sweep ran."""
    with stack.ctx.db.transaction() as session:
        parcel = session.scalar(select(Parcel).where(Parcel.tracking_number == number))
        assert parcel is not None
        parcel.holding_deadline = stack.ctx.now() - timedelta(minutes=1)
        parcel_id = parcel.id
    assert expiry.expire_overdue(stack.ctx) == [parcel_id]


def reserved_door(stack: Stack, number: str) -> int:
    [door] = [c["number"] for c in stack.view()["compartments"]
              if c["parcel"] == number and c["state"] == "reserved"]
    return int(door)


def carrier_at_the_keypad(stack: Stack, doors: dict[str, int]) -> None:
    """Offline: the carrier types its code; the expired parcel's door opens, then the door
    reserved for the parcel it scans."""
    status, answer = stack.carrier("GET", f"/lockers/{stack.site_id}/carrier-code")
    assert status == 200, answer
    assert not answer_on_screen(stack, f"carrier {answer['code']}").startswith("refused")
    door_opens(stack, doors[EXPIRING], "the expired parcel's door")
    assert stack.locker.do(f"close {doors[EXPIRING]} empty") == "ok"
    assert answer_on_screen(stack, "scan DAYNOTHERE01") == "refused: no_reservation"
    assert stack.locker.do(f"scan {AHEAD}") == "ok"
    door_opens(stack, doors[AHEAD], "the reserved door")
    assert stack.locker.do(f"close {doors[AHEAD]} occupied") == "ok"


def carrier_with_the_app(stack: Stack, doors: dict[str, int]) -> None:
    session_id = stack.open_session()
    status, answer = stack.carrier("POST", f"/locker-sessions/{session_id}/collection")
    assert status == 200 and answer["to_collect"] == [EXPIRING], answer
    door_opens(stack, doors[EXPIRING], "the expired parcel's door")
    assert stack.locker.do(f"close {doors[EXPIRING]} empty") == "ok"
    wait_until(lambda: stack.state_of(EXPIRING) == "returned", 15, "collected")
    assert drop(stack, session_id, AHEAD) == doors[AHEAD]
    assert stack.carrier("POST", f"/locker-sessions/{session_id}/close")[0] == 200


def play_day(stack: Stack, tmp: Path, broker: ProductionMosquitto, *, offline: bool
             ) -> dict[str, Any]:
    morning = [n for n in NUMBERS if n != AHEAD]
    stack.announce(*morning)
    session_id = stack.open_session()
    doors = {n: drop(stack, session_id, n) for n in morning}
    for number in morning:
        wait_until(lambda n=number: stack.state_of(n) == "ready_for_pickup", 15, number)
    assert stack.carrier("POST", f"/locker-sessions/{session_id}/close")[0] == 200
    expire(stack, EXPIRING)
    stack.announce(AHEAD, expected_date=stack.ctx.now().date().isoformat())
    doors[AHEAD] = reserved_door(stack, AHEAD)  # reserved in advance, synced to the locker
    # the residents' credentials, as their phones got them while they had data
    status, png = stack.http("GET", stack.tracking_path(QR) + "/qr.png")
    assert status == 200
    qr = decode_qr(png, tmp)
    status, spare_png = stack.http("GET", stack.tracking_path(SPARE) + "/qr.png")
    forged = altered(decode_qr(spare_png, tmp))
    status, view = stack.http("GET", stack.tracking_path(PIN))
    pin = view["pickup_code"]
    wrong_pin = "000000" if pin != "000000" else "111111"
    # the locker holds every credential before the cut
    wait_until(lambda: stack.view()["link"]["credential_version_held"]
               == stack.view()["link"]["credential_version_sent"], 20, "synced")

    if offline:
        broker.stop()
        wait_until(lambda: '"online": false' in stack.locker.do("state"), 10, "locker offline")

    assert stack.locker.do(f"scan {qr}") == "ok"
    door_opens(stack, doors[QR], "door open for the QR code")
    assert stack.locker.do(f"close {doors[QR]} empty") == "ok"
    assert stack.locker.do(f"pin {pin}") == "ok"
    door_opens(stack, doors[PIN], "door open for the PIN")
    assert stack.locker.do(f"close {doors[PIN]} empty") == "ok"
    refusals = [answer_on_screen(stack, f"scan {forged}"),
                answer_on_screen(stack, f"pin {wrong_pin}"),
                answer_on_screen(stack, f"scan {qr}")]  # spent
    assert all(r.startswith("refused") for r in refusals), refusals
    assert not stack.locker.door_open(doors[SPARE]) and not stack.locker.door_open(doors[KEPT])
    if offline:
        carrier_at_the_keypad(stack, doors)
    else:
        carrier_with_the_app(stack, doors)

    if offline:
        # nothing reached the backend while the link was down
        assert stack.state_of(QR) == stack.state_of(PIN) == "ready_for_pickup"
        assert (stack.state_of(EXPIRING), stack.state_of(AHEAD)) == ("expired", "announced")
        broker.start()
    started = time.monotonic()
    wait_until(lambda: stack.state_of(QR) == "picked_up" and stack.state_of(PIN) == "picked_up"
               and stack.state_of(EXPIRING) == "returned"
               and stack.state_of(AHEAD) == "ready_for_pickup", 60, "the day applied")
    wait_until(lambda: _drained(stack), 60, "journal replayed and acknowledged")
    print(f"{'offline' if offline else 'online'}: converged {time.monotonic() - started:.1f} s"
          " after the broker came back" if offline else "online: done")
    with stack.ctx.db.read() as session:
        decided_alone = sorted(bool(data.get("offline")) for data in session.scalars(
            select(ParcelEvent.data).where(ParcelEvent.action == "pick_up")))
        carrier_alone = sorted((action, bool(data.get("offline"))) for action, data in
                               session.execute(select(ParcelEvent.action, ParcelEvent.data)
                                               .join(Parcel).where(
                                   Parcel.tracking_number.in_((EXPIRING, AHEAD)),
                                   ParcelEvent.action.in_(("collect", "check_in")))))
    # the operator view agrees without waiting for the next heartbeat (60 s here)
    assert stack.view()["link"]["entries_waiting"] == 0
    return {"projection": project(stack), "refusals": refusals, "decided_alone": decided_alone,
            "carrier_alone": carrier_alone, "doors": stack.locker.doors(),
            "link": stack.view()["link"]}


def _drained(stack: Stack) -> bool:
    """Every entry applied by the backend and dropped from the locker's journal (the locker
    says so; the operator view's `entries_waiting` only refreshes with the next heartbeat)."""
    link = stack.view()["link"]
    applied, last = link["applied"], link["last_journal_entry"]
    waiting = json.loads(stack.locker.do("state"))["journal_waiting"]
    return bool(link["online"] and waiting == 0 and applied
                and applied["seq"] == last["seq"] and applied["boot_id"] == last["boot_id"]
                and link["credential_version_held"] == link["credential_version_sent"])


def project(stack: Stack) -> dict[str, Any]:
    """The backend's state without ids and times."""
    out: dict[str, Any] = {}
    with stack.ctx.db.read() as session:
        for number in NUMBERS:
            parcel = session.scalar(select(Parcel).where(Parcel.tracking_number == number))
            assert parcel is not None
            actions = list(session.scalars(select(ParcelEvent.action).where(
                ParcelEvent.parcel_id == parcel.id).order_by(ParcelEvent.id)))
            credentials = sorted(
                (c.holder, c.token_jti is not None, c.used_at is not None,
                 c.revoked_at is not None)
                for c in session.scalars(select(PickupCredential).where(
                    PickupCredential.parcel_id == parcel.id)))
            owed = sorted(tuple(r) for r in session.execute(select(
                Notification.kind, Notification.channel).where(
                Notification.parcel_id == parcel.id)))
            out[number] = {
                "state": parcel.state,
                "in_compartment": parcel.compartment_id is not None,
                "actions": [AUTHORISED.get(a, a) for a in actions
                            if a not in LOCKER_DECIDED_ONLY],
                "credentials": credentials,
                "notifications": owed,
            }
        out["alerts"] = sorted(session.scalars(select(LockerAlert.kind)))
    out["compartments"] = sorted(b["state"] for b in stack.view()["compartments"])
    return out


def run(tmp: Path, *, offline: bool) -> dict[str, Any]:
    """On a broker of the stack's own, with the production configuration: TLS, logins, ACL."""
    tmp.mkdir()
    stack = Stack(tmp, LOCKER_OPEN_TTL_S=30)
    assert stack.mosquitto is not None
    try:
        stack.start()
        return play_day(stack, tmp, stack.mosquitto, offline=offline)
    finally:
        stack.stop()


def test_a_locker_day_offline_ends_like_the_same_day_online(tmp_path: Path) -> None:
    online = run(tmp_path / "online", offline=False)
    offline = run(tmp_path / "offline", offline=True)

    day = online["projection"]
    assert day[QR]["state"] == day[PIN]["state"] == "picked_up"
    assert day[SPARE]["state"] == day[KEPT]["state"] == "ready_for_pickup"
    for number in (QR, PIN):  # exactly once each: no event lost or doubled
        for action in ("check_in", "door_authorised", "pick_up"):
            assert day[number]["actions"].count(action) == 1, (number, day[number]["actions"])
        assert ("picked_up", "sms") in day[number]["notifications"] or any(
            kind == "picked_up" for kind, _ in day[number]["notifications"])
    assert day[EXPIRING]["state"] == "returned" and day[AHEAD]["state"] == "ready_for_pickup"
    assert day[EXPIRING]["actions"].count("collect") == 1
    assert day[AHEAD]["actions"].count("check_in") == 1
    assert any(kind == "ready" for kind, _ in day[AHEAD]["notifications"])
    assert offline["projection"] == online["projection"]
    # ...although the backend decided the online pickups and the locker the offline ones
    assert online["decided_alone"] == [False, False]
    assert offline["decided_alone"] == [True, True]
    # the carrier's deposit and collection too: by the app online, the locker alone offline
    assert online["carrier_alone"] == [("check_in", False), ("check_in", False),
                                       ("collect", False)]
    assert offline["carrier_alone"] == [("check_in", False), ("check_in", True),
                                        ("collect", True)]
    assert offline["doors"] == online["doors"]
    # the locker refused the same three bad credentials, offline by itself
    assert [r.split(":")[0] for r in offline["refusals"]] == ["refused"] * 3
    assert offline["refusals"][2] == "refused: already_used"
