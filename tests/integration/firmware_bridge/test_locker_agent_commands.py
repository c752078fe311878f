"""The agent against the real Mosquitto, with a test client playing the backend."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from locker_harness import wait_until

from firmware_bridge import protocol as p
from firmware_bridge.agent.journal import Journal


def open_cmd(compartment: int = 3, purpose: p.Purpose = "pickup") -> p.OpenCompartment:
    return p.OpenCompartment(purpose=purpose, compartment=compartment, parcel_ref="P-1")


def test_connect_publishes_online_status_state_and_snapshot(online_locker) -> None:
    locker, backend = online_locker()
    wait_until(lambda: backend.retained_status(locker.locker_id) == "online", what="online status")
    state = wait_until(
        lambda: [m for m in backend.messages if isinstance(m, p.StateEnvelope)], what="state"
    )
    assert [c.number for c in state[0].body.compartments] == [1, 2, 3, 4]
    snapshot = backend.events("state_snapshot")[0]
    assert snapshot.seq == 1 and snapshot.boot_id == locker.agent.boot_id


def test_open_command_opens_the_door_and_reports_done(online_locker) -> None:
    locker, backend = online_locker()
    command = backend.command(locker.locker_id, open_cmd(3))
    backend.wait_result(command.corr_id, "done")
    assert backend.results(command.corr_id) == ["accepted", "done"]
    opened = backend.wait_event("door_opened")
    assert opened.body.corr_id == command.corr_id and locker.board.open_calls == [3]
    assert locker.board.display[-1] == "compartment 3 opens"
    locker.board.close_door(3, occupied=False)
    closed = backend.wait_event("door_closed")
    assert closed.body == p.DoorClosed(
        compartment=3,
        occupied=False,
        opened_for="pickup",
        corr_id=command.corr_id,
        open_seconds=closed.body.open_seconds,
    )
    seqs = [e.seq for e in backend.unique_events()]
    assert seqs == list(range(1, len(seqs) + 1))


def test_expired_command_is_refused_and_not_executed(online_locker) -> None:
    locker, backend = online_locker()
    late = datetime.now(UTC) - timedelta(seconds=p.CLOCK_TOLERANCE_S + 5)
    command = backend.command(locker.locker_id, open_cmd(2), expires_at=late)
    result = backend.wait_result(command.corr_id, "failed")
    assert result.reason == "expired"
    assert backend.results(command.corr_id) == ["failed"]
    assert locker.board.open_calls == []


def test_a_command_slightly_late_within_the_clock_tolerance_is_executed(online_locker) -> None:
    locker, backend = online_locker()
    command = backend.command(
        locker.locker_id, open_cmd(2), expires_at=datetime.now(UTC) - timedelta(seconds=5)
    )
    backend.wait_result(command.corr_id, "done")


def test_duplicate_command_has_one_effect_and_the_same_result(online_locker) -> None:
    locker, backend = online_locker()
    command = p.make_command(locker.locker_id, open_cmd(1))
    backend.send(command)
    backend.wait_result(command.corr_id, "done")
    backend.send(command)  # redelivery: same msg_id
    retry = p.make_command(
        locker.locker_id, open_cmd(1), corr_id=command.corr_id
    )  # retry: new msg_id
    backend.send(retry)
    wait_until(lambda: backend.results(command.corr_id).count("done") == 3, what="three answers")
    assert locker.board.open_calls == [1]
    assert len(backend.unique_events("door_opened")) == 1


def test_door_that_does_not_open_is_reported_failed_with_a_fault(online_locker) -> None:
    locker, backend = online_locker()
    locker.board.jam(4)
    command = backend.command(locker.locker_id, open_cmd(4))
    result = backend.wait_result(command.corr_id, "failed")
    assert result.reason == "door_failed_to_open"
    failed = backend.wait_event("door_failed_to_open")
    assert failed.body.compartment == 4 and failed.body.corr_id == command.corr_id
    assert backend.wait_event("fault").body.code == "door_jammed"
    assert backend.events("door_opened") == []
    assert locker.board.display[-1] == "compartment 4 failed to open"


def test_door_left_open_raises_an_alarm_once(online_locker) -> None:
    locker, backend = online_locker(door_left_open_s=0.3)
    locker.board.stick_open(2)
    command = backend.command(locker.locker_id, open_cmd(2, "deposit"))
    backend.wait_result(command.corr_id, "done")
    alarm = backend.wait_event("door_left_open")
    assert alarm.body.compartment == 2 and alarm.body.opened_for == "deposit"
    assert not locker.board.close_door(2)
    time.sleep(0.6)  # twice the alarm delay: a second alarm would have come by now
    assert len(backend.unique_events("door_left_open")) == 1


def test_parcel_left_behind_is_visible_in_door_closed(online_locker) -> None:
    locker, backend = online_locker()
    command = backend.command(locker.locker_id, open_cmd(1, "pickup"))
    backend.wait_result(command.corr_id, "done")
    locker.board.close_door(1, occupied=True)
    closed = backend.wait_event("door_closed")
    assert closed.body.opened_for == "pickup" and closed.body.occupied is True


def test_backend_ack_trims_the_journal(online_locker) -> None:
    locker, backend = online_locker()
    command = backend.command(locker.locker_id, open_cmd(1))
    backend.wait_result(command.corr_id, "done")
    journal = locker.agent.journal
    last = journal.last_seq(locker.agent.boot_id)
    assert journal.unacked_count() == last == 4  # snapshot, accepted, door_opened, done
    backend.ack(locker.locker_id, locker.agent.boot_id, 2)
    wait_until(lambda: journal.unacked_count() == 2, what="partial trim")
    backend.ack(locker.locker_id, locker.agent.boot_id, last)
    wait_until(lambda: journal.unacked_count() == 0, what="full trim")
    assert journal.acked_seq(locker.agent.boot_id) == last


def test_unacked_events_are_resent_until_acked(online_locker) -> None:
    locker, backend = online_locker(resend_min_s=0.2, resend_max_s=0.4)
    snapshot = backend.events("state_snapshot")[0]
    wait_until(
        lambda: len([e for e in backend.events() if e.msg_id == snapshot.msg_id]) >= 2,
        what="resend",
    )
    backend.ack(locker.locker_id, snapshot.boot_id, snapshot.seq)
    wait_until(lambda: locker.agent.journal.unacked_count() == 0, what="trim")


def test_resend_events_answers_a_gap(online_locker) -> None:
    locker, backend = online_locker(resend_min_s=60, resend_max_s=60)
    command = backend.command(locker.locker_id, open_cmd(1))
    backend.wait_result(command.corr_id, "done")
    wanted = {e.msg_id for e in backend.events() if e.seq in (2, 3)}
    resend = backend.command(
        locker.locker_id, p.ResendEvents(boot_id=locker.agent.boot_id, from_seq=2, to_seq=3)
    )
    backend.wait_result(resend.corr_id, "done")
    wait_until(
        lambda: all(len([e for e in backend.events() if e.msg_id == m]) == 2 for m in wanted),
        what="events 2..3 again",
    )


def test_out_of_service_refuses_openings_except_maintenance(online_locker) -> None:
    locker, backend = online_locker()
    oos = backend.command(locker.locker_id, p.SetOutOfService(reason="vandalised", compartment=2))
    backend.wait_result(oos.corr_id, "done")
    refused = backend.command(locker.locker_id, open_cmd(2))
    assert backend.wait_result(refused.corr_id, "failed").reason == "out_of_service"
    maintenance = backend.command(locker.locker_id, open_cmd(2, "maintenance"))
    backend.wait_result(maintenance.corr_id, "done")
    back = backend.command(locker.locker_id, p.SetInService(compartment=2))
    backend.wait_result(back.corr_id, "done")
    locker.board.close_door(2)
    again = backend.command(locker.locker_id, open_cmd(2))
    backend.wait_result(again.corr_id, "done")


def test_request_snapshot_and_invalid_commands(online_locker) -> None:
    locker, backend = online_locker()
    backend.client.publish(
        p.cmd_topic(locker.locker_id), b'{"v": 1, "type": "open_compartment"}', qos=1
    )
    backend.client.publish(p.cmd_topic(locker.locker_id), b"\x00garbage", qos=1)
    command = backend.command(locker.locker_id, p.RequestSnapshot())
    backend.wait_result(command.corr_id, "done")
    snapshots = backend.events("state_snapshot")
    wait_until(lambda: len(backend.unique_events("state_snapshot")) == 2, what="second snapshot")
    assert snapshots[0].body.compartments[0].door == "closed"
    assert locker.agent.online


def test_graceful_stop_publishes_offline_status(make_locker, backend_for) -> None:
    locker = make_locker(start=False)
    backend = backend_for(locker)
    locker.agent.start()
    wait_until(lambda: backend.retained_status(locker.locker_id) == "online", what="online")
    locker.agent.stop()
    wait_until(lambda: backend.retained_status(locker.locker_id) == "offline", what="offline")
    reopened = Journal(locker.journal_path)
    assert reopened.unacked_count() >= 1  # nothing was acked: it stays for the next boot
    reopened.close()
    first_snapshot = backend.events("state_snapshot")[0]
    rebooted = make_locker(locker_id=locker.locker_id)  # same journal, new boot
    wait_until(lambda: backend.retained_status(locker.locker_id) == "online", what="online again")
    assert rebooted.agent.boot_id != first_snapshot.boot_id
    wait_until(
        lambda: len([e for e in backend.events() if e.msg_id == first_snapshot.msg_id]) >= 2,
        what="the previous boot's unacked event resent",
    )


def test_heartbeat_repeats_the_last_seq_and_is_not_journaled(online_locker) -> None:
    locker, backend = online_locker(heartbeat_s=0.2)
    beat = backend.wait_event("heartbeat")
    assert beat.seq == locker.agent.journal.last_seq(locker.agent.boot_id)
    assert beat.body.unacked_events == locker.agent.journal.unacked_count()
    assert "heartbeat" not in {e.type for e in locker.agent.journal.unacked_events()}


def test_a_door_closed_since_the_last_poll_is_journaled_before_the_snapshot(
        online_locker) -> None:
    # Doors are polled only between inbox items here, so the close below is not seen before
    # the snapshot is asked for: the snapshot must not overtake the door's own event.
    locker, backend = online_locker(poll_s=3600)
    command = backend.command(locker.locker_id, p.OpenCompartment(
        purpose="deposit", compartment=2, parcel_ref="P-2"))
    backend.wait_result(command.corr_id, "done")
    assert locker.board.door_state(2) == "open"
    locker.board.close_door(2, occupied=True)
    backend.command(locker.locker_id, p.RequestSnapshot())
    snapshot = backend.wait_event("state_snapshot", lambda b: b.compartments[1].occupied)
    closed = backend.wait_event("door_closed")
    assert closed.body.compartment == 2 and closed.body.opened_for == "deposit"
    assert closed.seq < snapshot.seq  # the backend applies a boot's events in seq order


def test_a_door_found_open_at_restart_keeps_why_and_since_when(make_locker, backend_for
                                                               ) -> None:  # type: ignore[no-untyped-def]
    """Issue 14: an agent restarted with a door open reported it left open for the machine's
    whole uptime, and the pickup closing it without its credential."""
    from firmware_bridge.agent.agent import LockerAgent
    from tests.integration.firmware_bridge.conftest import fast_settings

    locker = make_locker(door_left_open_s=60)
    backend = backend_for(locker)
    backend.wait_event("state_snapshot")
    command = backend.command(locker.locker_id, p.OpenCompartment(
        purpose="pickup", compartment=2, parcel_ref="P-2", credential_id="cred-2"))
    backend.wait_result(command.corr_id, "done")
    locker.agent.stop()
    locker.clock.offset += 7  # the agent was down 7 s; the door stayed open
    restarted = LockerAgent(locker.locker_id, locker.board, "127.0.0.1", locker.agent.port,
                            locker.journal_path, settings=fast_settings(door_left_open_s=60),
                            clock=locker.clock, identity=locker.agent.identity)
    restarted.start()
    try:
        wait_until(lambda: restarted.online, 5, "back online")
        locker.board.close_door(2, occupied=False)
        closed = backend.wait_event("door_closed", lambda b: b.compartment == 2)
        assert closed.body.opened_for == "pickup" and closed.body.credential_id == "cred-2"
        assert closed.body.corr_id == command.corr_id
        assert 7 <= (closed.body.open_seconds or 0) < 30
        assert backend.events("door_left_open") == []
    finally:
        restarted.stop()
