"""Issue 14: a door opens only on the backend's word, whatever else is on the broker.

Each test plays an attacker who can publish on the locker's command topic (an anonymous
client, another locker, a broker operator) and shows what the locker does: the door stays
shut, the refusal is logged and reported to the backend as a `command_refused` fault. The
stand-in backend (locker_harness.FakeBackend) signs as the real one does.
"""

from __future__ import annotations

import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from locker_harness import BACKEND_KEY, BACKEND_KID, next_counter, signed, wait_until

from firmware_bridge import protocol as p


def open_door(compartment: int = 1) -> p.OpenCompartment:
    return p.OpenCompartment(purpose="maintenance", compartment=compartment)


def refusal(backend, reason: str):  # type: ignore[no-untyped-def]
    return backend.wait_event(
        "fault", lambda b: b.code == "command_refused" and b.detail.startswith(reason)
    )


def still_shut(locker, settle_s: float = 0.5) -> bool:  # type: ignore[no-untyped-def]
    time.sleep(settle_s)  # a door that was going to open would have by now
    return locker.board.open_calls == []


def test_an_unsigned_command_opens_nothing(online_locker) -> None:
    locker, backend = online_locker()
    command = p.make_command(locker.locker_id, open_door(), ctr=10_000)
    backend.send_raw(locker.locker_id, p.encode(command))
    refusal(backend, "unsigned")
    assert still_shut(locker)
    assert backend.results(command.corr_id) == []


def test_a_command_signed_by_another_key_opens_nothing(online_locker) -> None:
    locker, backend = online_locker()
    intruder = Ed25519PrivateKey.generate()
    command = p.make_command(locker.locker_id, open_door(), ctr=10_000)
    backend.send_raw(locker.locker_id, p.sign(command, intruder, "intruder"))
    refusal(backend, "unknown_key")
    # the intruder names the backend's key id: the signature itself fails
    backend.send_raw(locker.locker_id, p.sign(command, intruder, BACKEND_KID))
    refusal(backend, "bad_signature")
    assert still_shut(locker)


def test_a_signed_command_altered_on_the_way_opens_nothing(online_locker) -> None:
    locker, backend = online_locker()
    command = p.make_command(locker.locker_id, open_door(1), ctr=next_counter(locker.locker_id))
    tampered = signed(command).replace(b'"compartment":1', b'"compartment":2')
    backend.send_raw(locker.locker_id, tampered)
    refusal(backend, "bad_signature")
    assert still_shut(locker)


def test_a_retained_command_is_refused_even_when_signed(make_locker, backend_for) -> None:  # type: ignore[no-untyped-def]
    """A retained copy is handed to every later connection: the locker coming online must
    not obey it (a broker delivers it with the retain flag only then)."""
    locker = make_locker(start=False)
    backend = backend_for(locker)
    command = p.make_command(locker.locker_id, open_door(), ctr=next_counter(locker.locker_id))
    backend.send_raw(locker.locker_id, signed(command), retain=True)
    try:
        locker.agent.start()
        refusal(backend, "retained")
        assert still_shut(locker)
    finally:
        backend.send_raw(locker.locker_id, b"", retain=True)  # clear it from the broker


def test_a_command_for_another_locker_is_dropped(online_locker) -> None:
    locker, backend = online_locker()
    # signed by the backend for locker B, published on A's topic by someone who captured it
    command = p.make_command("OTHER-LOCKER", open_door(), ctr=next_counter("OTHER-LOCKER"))
    backend.send_raw(locker.locker_id, signed(command))
    assert still_shut(locker)
    assert backend.results(command.corr_id) == []


def test_a_replayed_command_has_no_second_effect(online_locker) -> None:
    locker, backend = online_locker()
    command = p.make_command(locker.locker_id, open_door(2), ctr=next_counter(locker.locker_id))
    captured = signed(command)
    backend.send_raw(locker.locker_id, captured)
    backend.wait_result(command.corr_id, "done")
    locker.board.close_door(2, occupied=False)
    backend.wait_event("door_closed")
    backend.send_raw(locker.locker_id, captured)  # the capture, played again
    wait_until(lambda: backend.results(command.corr_id).count("done") == 2, 5, "second answer")
    assert locker.board.open_calls == [2]


def test_a_new_command_under_a_passed_counter_is_refused_and_not_recorded(online_locker
                                                                         ) -> None:
    locker, backend = online_locker()
    first = backend.command(locker.locker_id, open_door(1), ctr=50)
    backend.wait_result(first.corr_id, "done")
    old = backend.command(locker.locker_id, open_door(2), ctr=49)
    assert backend.wait_result(old.corr_id, "failed").reason == p.STALE_COUNTER
    assert locker.board.open_calls == [1]
    # not recorded as handled: the backend's republication under a new counter is obeyed
    again = old.model_copy(update={"ctr": 51})
    backend.send(again)
    backend.wait_result(old.corr_id, "done")
    assert locker.board.open_calls == [1, 2]


def test_the_counter_survives_a_restart(make_locker, backend_for) -> None:  # type: ignore[no-untyped-def]
    locker = make_locker()
    backend = backend_for(locker)
    backend.wait_event("state_snapshot")
    applied = backend.command(locker.locker_id, open_door(1), ctr=70)
    backend.wait_result(applied.corr_id, "done")
    locker.agent.stop()
    restarted = make_locker(locker_id=locker.locker_id, start=False)
    restarted.agent.identity = locker.agent.identity
    restarted.agent.start()
    wait_until(lambda: restarted.agent.online, 5, "back online")
    replay = backend.command(locker.locker_id, open_door(2), ctr=70)
    assert backend.wait_result(replay.corr_id, "failed").reason == p.STALE_COUNTER
    assert restarted.board.open_calls == []


def test_a_forged_ack_does_not_drop_unacknowledged_events(online_locker) -> None:
    locker, backend = online_locker()
    boot = locker.agent.boot_id
    waiting = locker.agent.journal.unacked_count()
    assert waiting > 0
    forged = p.make_ack(locker.locker_id, boot, 10_000)
    backend.client.publish(p.ack_topic(locker.locker_id), p.encode(forged), qos=1)
    refusal(backend, "unsigned")
    assert locker.agent.journal.unacked_count() >= waiting
    real = p.make_ack(locker.locker_id, boot, locker.agent.journal.last_seq(boot))
    backend.client.publish(p.ack_topic(locker.locker_id), p.sign(real, BACKEND_KEY, BACKEND_KID),
                           qos=1)
    wait_until(lambda: locker.agent.journal.acked_seq(boot) > 0, 5, "real ack applied")


def test_a_flood_of_forgeries_is_reported_once_a_minute(online_locker) -> None:
    locker, backend = online_locker()
    for _ in range(50):
        command = p.make_command(locker.locker_id, open_door(), ctr=10_000)
        backend.send_raw(locker.locker_id, p.encode(command))
    refusal(backend, "unsigned")
    time.sleep(0.5)
    reports = [e for e in backend.unique_events("fault") if e.body.code == "command_refused"]
    assert len(reports) == 1
    assert locker.board.open_calls == []


def test_the_backend_rotates_its_command_key_through_a_signed_sync(online_locker) -> None:
    """Old and new side by side, then the old one dropped: no re-provisioning needed, and
    only a sync signed by a key the locker already trusts can change the keys it trusts."""
    locker, backend = online_locker()
    new_key = Ed25519PrivateKey.generate()
    both = [p.PublicKey(kid=BACKEND_KID, key=p.raw_public_key(BACKEND_KEY)),
            p.PublicKey(kid="next", key=p.raw_public_key(new_key))]
    sync = backend.command(locker.locker_id, locker.credentials.sync().model_copy(
        update={"command_keys": both}))
    backend.wait_result(sync.corr_id, "done")
    by_new = p.make_command(locker.locker_id, open_door(1), ctr=next_counter(locker.locker_id))
    backend.send_raw(locker.locker_id, p.sign(by_new, new_key, "next"))
    backend.wait_result(by_new.corr_id, "done")
    # the old key dropped, by a sync the new key signs
    locker.credentials.version += 1
    only_new = p.make_command(locker.locker_id, locker.credentials.sync().model_copy(
        update={"command_keys": both[1:]}), ctr=next_counter(locker.locker_id))
    backend.send_raw(locker.locker_id, p.sign(only_new, new_key, "next"))
    backend.wait_result(only_new.corr_id, "done")
    by_old = backend.command(locker.locker_id, open_door(2))
    refusal(backend, "unknown_key")
    assert backend.results(by_old.corr_id) == [] and locker.board.open_calls == [1]


def test_an_intruder_cannot_make_the_locker_trust_their_key(online_locker) -> None:
    locker, backend = online_locker()
    intruder = Ed25519PrivateKey.generate()
    theirs = [p.PublicKey(kid="intruder", key=p.raw_public_key(intruder))]
    sync = p.make_command(locker.locker_id, locker.credentials.sync().model_copy(
        update={"command_keys": theirs}), ctr=10_000)
    backend.send_raw(locker.locker_id, p.sign(sync, intruder, "intruder"))
    refusal(backend, "unknown_key")
    still_ours = backend.command(locker.locker_id, open_door(3))
    backend.wait_result(still_ours.corr_id, "done")
