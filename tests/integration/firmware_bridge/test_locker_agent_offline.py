"""Offline first: the broker goes away, the locker keeps serving pickups, and the backend gets
every journaled event after the link comes back, in order, none lost."""

from __future__ import annotations

import time

from locker_harness import Credentials, FakeBackend, seed_journal, wait_until

from firmware_bridge import protocol as p


def sync_and_wait(backend: FakeBackend, locker_id: str, credentials: Credentials) -> None:
    command = backend.command(locker_id, credentials.sync())
    backend.wait_result(command.corr_id, "done")
    backend.wait_event("sync_ack", lambda b: b.applied and b.version == credentials.version)


def assert_contiguous_and_unique(backend: FakeBackend, boot_id: str) -> list[p.EventEnvelope]:
    events = [e for e in backend.unique_events() if e.boot_id == boot_id and e.type != "heartbeat"]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    by_seq = {}
    for event in backend.events():
        if event.boot_id == boot_id and event.type != "heartbeat":
            assert by_seq.setdefault(event.seq, event.msg_id) == event.msg_id  # one event per seq
    return events


def test_offline_pickups_with_qr_and_pin_are_replayed_in_order(
    private_broker, make_locker, backend_for
) -> None:
    locker = make_locker(private_broker.port, start=False)
    backend = backend_for(locker, private_broker.port)
    locker.agent.start()
    backend.wait_event("state_snapshot")
    creds = locker.credentials
    pin_id = creds.add_pin("482913", parcel_ref="P-PIN", compartment=2)
    sync_and_wait(backend, locker.locker_id, creds)
    qr, qr_claims = creds.token(parcel_id=1001, compartment=1)
    forged, _ = creds.token(parcel_id=1002, compartment=3, key=Credentials("x").private_key)
    expired, _ = creds.token(parcel_id=1003, compartment=3, now=time.time() - 7200)
    elsewhere, _ = creds.token(parcel_id=1004, compartment=3, site="another-locker")

    backend.close()
    private_broker.stop()
    wait_until(lambda: not locker.agent.online, 5, "agent offline")

    locker.board.scan(qr)
    wait_until(lambda: locker.board.open_calls == [1], 3, "door 1 opens offline")
    locker.board.type_pin("482913")
    wait_until(lambda: locker.board.open_calls == [1, 2], 3, "door 2 opens offline")
    for refused in (forged, expired, elsewhere, qr):
        locker.board.scan(refused)
    locker.board.type_pin("482913")  # spent
    wait_until(lambda: len(locker.board.display) >= 7, 3, "screen answers")
    assert locker.board.display[2:] == [
        "refused: bad_signature",
        "refused: expired",
        "refused: wrong_site",
        "refused: already_used",
        "refused: already_used",
    ]
    assert locker.board.open_calls == [1, 2]
    locker.board.close_door(1, occupied=False)
    locker.board.close_door(2, occupied=False)
    wait_until(lambda: locker.agent.journal.unacked_count() >= 14, 3, "journaled offline")

    private_broker.start()
    backend = backend_for(locker, private_broker.port)
    wait_until(lambda: locker.agent.online, 10, "agent back online")
    boot = locker.agent.boot_id
    backend.wait_event("state_snapshot", lambda b: b.credential_version == 1)
    last = locker.agent.journal.last_seq(boot)
    # nothing was acked, so the reconnect resends the whole journal, oldest first
    seen = lambda: {e.seq for e in backend.events() if e.boot_id == boot}  # noqa: E731
    wait_until(lambda: seen() >= set(range(1, last + 1)), 5, "replay of the journal")
    first_copies = len(backend.events())
    # a backend that saw a gap asks again: the same events come back (same msg_id and seq)
    resend = backend.command(locker.locker_id, p.ResendEvents(boot_id=boot, from_seq=1, to_seq=3))
    backend.wait_result(resend.corr_id, "done")
    wait_until(lambda: len(backend.events()) >= first_copies + 3, 5, "requested range again")

    events = assert_contiguous_and_unique(backend, boot)
    pickups = [e.body for e in events if e.type == "offline_pickup"]
    assert [(b.credential_kind, b.credential_id, b.compartment) for b in pickups] == [
        ("qr", qr_claims.jti, 1),
        ("pin", pin_id, 2),
    ]
    assert pickups[0].token == qr and pickups[0].parcel_ref == "1001"
    refusals = [e.body.reason for e in events if e.type == "credential_presented"]
    assert refusals == ["bad_signature", "expired", "wrong_site", "already_used", "already_used"]
    kinds = [e.type for e in events]
    assert kinds.index("offline_pickup") < kinds.index("door_opened")
    backend.ack(locker.locker_id, boot, last)
    wait_until(lambda: locker.agent.journal.unacked_count() <= 3, 5, "journal trimmed")


def test_pin_throttling_offline_locks_the_keypad_and_doubles(make_locker, tmp_path) -> None:
    from locker_harness import free_port

    locker = make_locker(free_port(), start=False, pin_lockout_s=60)  # no broker there: offline
    locker.credentials.add_pin("111111", parcel_ref="P-1", compartment=1)
    seed_journal(locker.journal_path, locker.credentials)
    locker.agent.start()

    def answer_to(pin: str) -> str:
        before = len(locker.board.display)
        locker.board.type_pin(pin)
        wait_until(lambda: len(locker.board.display) > before, 3, "screen answer")
        return locker.board.display[before]

    assert [answer_to("000000") for _ in range(5)] == ["refused: unknown_code"] * 5
    assert answer_to("111111") == "refused: locked_out"
    locker.clock.offset = 61
    for _ in range(5):
        answer_to("999999")
    locker.clock.offset = 61 + 61
    assert answer_to("111111") == "refused: locked_out"  # second lockout lasts 120 s
    locker.clock.offset = 61 + 121
    assert answer_to("111111") == "compartment 1 opens"
    wait_until(lambda: locker.board.open_calls == [1], 3, "door opens")


def test_offline_answers_are_journaled_with_the_keypad_state_in_one_commit(
    make_locker,
) -> None:
    """Before a door opens (or a wrong code's refusal shows), the use and its event (or the
    refusal) and the keypad throttle are committed (a kill -9 forgets no wrong code), in one
    transaction: one fsync, not two."""
    import sqlite3

    from locker_harness import free_port

    locker = make_locker(free_port(), start=False)  # no broker there: offline
    locker.credentials.add_pin("135790", parcel_ref="P-1", compartment=2)
    seed_journal(locker.journal_path, locker.credentials)
    locker.agent.start()
    commits: list[str] = []
    locker.agent.journal._db.set_trace_callback(
        lambda sql: commits.append(sql) if sql == "COMMIT" else None
    )
    committed_at_answer: list[tuple[int, object, object]] = []

    def committed_state() -> None:
        # another connection sees only what is committed, as a restarted agent would
        reader = sqlite3.connect(locker.journal_path)
        try:
            throttle = reader.execute(
                "SELECT value FROM meta WHERE key = 'keypad_throttle'"
            ).fetchone()
            last = reader.execute("SELECT type FROM outbox ORDER BY seq DESC LIMIT 1").fetchone()
        finally:
            reader.close()
        committed_at_answer.append((len(commits), throttle and throttle[0], last and last[0]))

    show, open_door = locker.board.show, locker.board.open
    locker.board.show = lambda message: (committed_state(), show(message))  # type: ignore
    locker.board.open = lambda n: (committed_state(), open_door(n))[1]  # type: ignore

    locker.board.type_pin("000000")
    wait_until(lambda: locker.board.display == ["refused: unknown_code"], 3, "refusal shown")
    locker.board.type_pin("135790")
    wait_until(lambda: locker.board.open_calls == [2], 3, "door 2 opens")
    wrong, screen, door = committed_at_answer
    assert wrong[0] == 1 and '"failures": 1' in wrong[1] and wrong[2] == "credential_presented"
    # "compartment 2 opens" is shown after the commit, just before the lock is pulsed
    assert screen[0] == door[0] == 2
    assert '"failures": 0' in door[1] and door[2] == "offline_pickup"


def test_online_credential_is_forwarded_and_the_backend_decides(online_locker) -> None:
    locker, backend = online_locker(forward_timeout_s=5)
    sync_and_wait(backend, locker.locker_id, locker.credentials)
    token, claims = locker.credentials.token(parcel_id=77, compartment=3)
    locker.board.scan(token)
    presented = backend.wait_event("credential_presented").body
    assert presented.result == "forwarded" and presented.token == token
    command = backend.command(
        locker.locker_id,
        p.OpenCompartment(
            purpose="pickup",
            compartment=3,
            parcel_ref="77",
            credential_id=claims.jti,
            presentation_id=presented.presentation_id,
        ),
    )
    backend.wait_result(command.corr_id, "done")
    assert locker.board.open_calls == [3]
    locker.board.close_door(3, occupied=False)
    # the same QR again: the backend says no, the locker does not fall back to itself
    locker.board.scan(token)
    again = backend.wait_event(
        "credential_presented", lambda b: b.presentation_id != presented.presentation_id
    ).body
    reject = backend.command(
        locker.locker_id,
        p.RejectCredential(presentation_id=again.presentation_id, reason="already_picked_up"),
    )
    backend.wait_result(reject.corr_id, "done")
    assert locker.board.display[-1] == "refused: already_picked_up"
    assert locker.board.open_calls == [3]


def test_silent_backend_lets_the_locker_decide_locally_after_the_timeout(online_locker) -> None:
    locker, backend = online_locker(forward_timeout_s=0.3)
    pin_id = locker.credentials.add_pin("246810", parcel_ref="P-9", compartment=4)
    sync_and_wait(backend, locker.locker_id, locker.credentials)
    locker.board.type_pin("246810")
    presented = backend.wait_event("credential_presented").body
    assert presented.kind == "pin" and presented.code_hash and presented.result == "forwarded"
    pickup = backend.wait_event("offline_pickup").body
    assert pickup.credential_id == pin_id and pickup.presentation_id == presented.presentation_id
    wait_until(lambda: locker.board.open_calls == [4], 3, "door opens")
    # the backend's late answer must not open a second time
    late = backend.command(
        locker.locker_id,
        p.OpenCompartment(
            purpose="pickup", compartment=4, presentation_id=presented.presentation_id
        ),
    )
    assert backend.wait_result(late.corr_id, "failed").reason == "already_handled"
    assert locker.board.open_calls == [4]


def test_incremental_sync_needs_the_held_version(online_locker) -> None:
    locker, backend = online_locker()
    stale = p.SyncCredentials(version=5, full=False, base_version=4, revoked_credentials=["x"])
    command = backend.command(locker.locker_id, stale)
    assert backend.wait_result(command.corr_id, "failed").reason == "version_mismatch"
    assert backend.wait_event("sync_ack").body == p.SyncAck(version=None, applied=False)
    sync_and_wait(backend, locker.locker_id, locker.credentials)
    token, claims = locker.credentials.token(parcel_id=5, compartment=1)
    revoke = p.SyncCredentials(version=2, full=False, base_version=1, revoked_parcels=["5"])
    backend.wait_result(backend.command(locker.locker_id, revoke).corr_id, "done")
    assert backend.wait_event("sync_ack", lambda b: b.version == 2).body.applied
    locker.agent.settings.forward_timeout_s = 0.1
    locker.board.scan(token)
    wait_until(lambda: "refused: revoked" in locker.board.display, 3, "revoked parcel refused")
    assert locker.board.open_calls == []


CARRIER_CODE = "77001122"


def carrier_locker(make_locker, *reservations: tuple[str, str, int, str], **kwargs):  # type: ignore[no-untyped-def]
    """A locker offline from the start that holds these (id, purpose, door, parcel)
    reservations for CARRIER_CODE, as a sync before the link went down left them."""
    from datetime import UTC, datetime, timedelta

    from locker_harness import free_port

    from firmware_bridge.agent.journal import Journal

    locker = make_locker(free_port(), start=False, **kwargs)
    creds = locker.credentials
    held = [
        p.Reservation(
            reservation_id=rid,
            purpose=purpose,  # type: ignore[arg-type]
            compartment=door,
            parcel_ref=parcel,
            code_hash=p.keyed_code_hash(creds.pin_key, CARRIER_CODE),
            expires_at=datetime.now(UTC) + timedelta(hours=2),
        )
        for rid, purpose, door, parcel in reservations
    ]
    sync = creds.sync().model_copy(update={"reservations": held})
    journal = Journal(locker.journal_path)
    journal.store_credentials(sync.version, sync.model_dump_json())
    journal.close()
    locker.agent.start()
    return locker


def journaled(locker) -> list[p.EventEnvelope]:  # type: ignore[no-untyped-def]
    return [
        p.parse_message(p.evt_topic(locker.locker_id), e.payload)
        for e in locker.agent.journal.unacked_events()
    ]


def test_offline_deposit_with_a_carrier_code_then_the_parcels_barcode(make_locker) -> None:
    locker = carrier_locker(
        make_locker, ("R-1", "deposit", 4, "P-DEP"), ("R-2", "deposit", 2, "P-TWO")
    )
    locker.board.type_carrier_code(CARRIER_CODE)
    wait_until(
        lambda: (
            locker.board.display[-1:] == ["carrier: 0 to collect, 2 to deposit (scan each parcel)"]
        ),
        3,
        "the screen asks for the parcels",
    )
    assert locker.board.open_calls == []  # which door depends on the parcel in hand
    locker.board.scan("P-UNKNOWN")
    wait_until(lambda: locker.board.display[-1:] == ["refused: no_reservation"], 3, "refused")
    locker.board.scan("P-DEP")
    wait_until(lambda: locker.board.open_calls == [4], 3, "its reserved door opens")
    # the screen names the door after the pulse, once the use's outcome is journaled (an
    # fsync later: read at once, a loaded disk showed the previous answer)
    wait_until(
        lambda: locker.board.display[-1:] == ["compartment 4 opens: put in P-DEP"],
        3,
        "the screen names the door",
    )
    locker.board.close_door(4, occupied=True)
    wait_until(lambda: journaled(locker)[-1].type == "door_closed", 3, "door_closed journaled")
    events = journaled(locker)
    deposit = next(e for e in events if e.type == "offline_deposit")
    assert (deposit.body.reservation_id, deposit.body.compartment, deposit.body.parcel_ref) == (
        "R-1",
        4,
        "P-DEP",
    )
    opened = next(e for e in events if e.type == "door_opened")
    assert opened.seq == deposit.seq + 1  # journaled before the door opened
    assert (opened.body.purpose, opened.body.credential_id) == ("deposit", "R-1")
    closed = events[-1].body
    assert (closed.opened_for, closed.occupied, closed.credential_id) == ("deposit", True, "R-1")
    locker.board.scan("P-DEP")  # a reservation opens once
    wait_until(lambda: locker.board.display[-1:] == ["refused: no_reservation"], 3, "used")
    refused = [e.body for e in journaled(locker) if e.type == "credential_presented"]
    assert [(r.kind, r.result, r.reason) for r in refused] == [
        ("carrier", "refused", "no_reservation")
    ] * 2
    # typed again later, the code still opens the other door, never R-1 again
    locker.board.type_carrier_code(CARRIER_CODE)
    wait_until(
        lambda: (
            locker.board.display[-1:] == ["carrier: 0 to collect, 1 to deposit (scan each parcel)"]
        ),
        3,
        "one left",
    )


def test_offline_collection_opens_the_expired_parcels_doors_one_after_the_other(
    make_locker,
) -> None:
    locker = carrier_locker(
        make_locker, ("C-3", "collection", 3, "P-OLD3"), ("C-1", "collection", 1, "P-OLD1")
    )
    locker.board.type_carrier_code(CARRIER_CODE)
    wait_until(lambda: locker.board.open_calls == [1], 3, "the first door opens")
    time.sleep(0.3)
    assert locker.board.open_calls == [1]  # the next waits for this one to close
    locker.board.close_door(1, occupied=False)
    wait_until(lambda: locker.board.open_calls == [1, 3], 3, "then the next")
    locker.board.close_door(3, occupied=False)
    wait_until(lambda: locker.board.display[-1:] == ["carrier: done"], 3, "done")
    kinds = [(e.type, getattr(e.body, "compartment", None)) for e in journaled(locker)]
    assert [k for k in kinds if k[0] != "state_snapshot"] == [
        ("offline_collection", 1),
        ("door_opened", 1),
        ("door_closed", 1),
        ("offline_collection", 3),
        ("door_opened", 3),
        ("door_closed", 3),
    ]
    locker.board.type_carrier_code(CARRIER_CODE)  # nothing left for this code
    wait_until(lambda: locker.board.display[-1:] == ["refused: nothing_reserved"], 3, "empty")


def test_wrong_carrier_codes_are_refused_and_throttled_like_pins(make_locker) -> None:
    locker = carrier_locker(make_locker, ("C-1", "collection", 1, "P-OLD1"), pin_max_failures=2)
    locker.board.type_carrier_code("00000000")
    wait_until(lambda: locker.board.display[-1:] == ["refused: unknown_code"], 3, "unknown")
    locker.board.type_carrier_code("00000001")
    wait_until(lambda: len(locker.board.display) == 2, 3, "second refusal")
    locker.board.type_carrier_code(CARRIER_CODE)  # right, but the keypad is locked
    wait_until(lambda: locker.board.display[-1:] == ["refused: locked_out"], 3, "locked out")
    assert locker.board.open_calls == []


def test_online_the_carrier_code_is_decided_at_once_and_reported(online_locker) -> None:
    """The backend decided when it reserved the doors: no forward, no 5 s wait."""
    from datetime import UTC, datetime, timedelta

    locker, backend = online_locker(forward_timeout_s=5)
    creds = locker.credentials
    sync = creds.sync().model_copy(
        update={
            "reservations": [
                p.Reservation(
                    reservation_id="C-2",
                    purpose="collection",
                    compartment=2,
                    parcel_ref="P-OLD",
                    code_hash=p.keyed_code_hash(creds.pin_key, CARRIER_CODE),
                    expires_at=datetime.now(UTC) + timedelta(hours=2),
                )
            ]
        }
    )
    command = backend.command(locker.locker_id, sync)
    backend.wait_result(command.corr_id, "done")
    locker.board.type_carrier_code(CARRIER_CODE)
    wait_until(lambda: locker.board.open_calls == [2], 1, "the door opens without a forward")
    collection = backend.wait_event("offline_collection").body
    assert (collection.reservation_id, collection.parcel_ref) == ("C-2", "P-OLD")
    assert not [
        e for e in backend.unique_events("credential_presented") if e.body.result == "forwarded"
    ]
