"""An agent started on a journal that still holds an earlier boot's entries (a day offline,
then a restart): how it replays them to the backend (protocol section 6)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import Locker
from locker_harness import FakeBackend, wait_until

from firmware_bridge import protocol as p
from firmware_bridge.agent.journal import Journal


def earlier_boot(path: Path, locker_id: str, entries: int) -> str:
    """A journal holding `entries` unacknowledged events of a boot before the agent's."""
    journal = Journal(path)
    boot = journal.start_boot()
    for n in range(entries):
        journal.append_event(boot, lambda seq, n=n: p.make_event(
            locker_id, boot, seq, p.Fault(code="scanner_unreadable", detail=f"entry {n}")))
    journal.close()
    return boot


def received_seqs(backend: FakeBackend, boot: str) -> list[int]:
    return [e.seq for e in backend.events() if e.boot_id == boot]


def test_an_agent_says_at_once_that_its_replay_is_over(
        make_locker: Callable[..., Locker], backend_for: Callable[..., FakeBackend]) -> None:
    locker = make_locker(start=False)  # heartbeats once an hour (fast_settings)
    old = earlier_boot(locker.journal_path, locker.locker_id, 3)
    backend = backend_for(locker)
    locker.agent.start()
    snapshot = backend.wait_event("state_snapshot")
    assert snapshot.body.unacked_events == 3  # type: ignore[union-attr]
    wait_until(lambda: received_seqs(backend, old) == [1, 2, 3], 5, "the old boot replayed")
    assert backend.events("heartbeat") == []
    backend.ack(locker.locker_id, snapshot.boot_id, snapshot.seq)
    backend.ack(locker.locker_id, old, 3)
    # the journal is empty: a heartbeat tells the backend now, not within the hour
    heartbeat = backend.wait_event("heartbeat", lambda b: b.unacked_events == 0)
    assert heartbeat.boot_id == snapshot.boot_id and heartbeat.seq == snapshot.seq


def test_the_replay_is_paced_by_acks_a_window_at_a_time(
        make_locker: Callable[..., Locker], backend_for: Callable[..., FakeBackend]) -> None:
    # the backoff is an hour: whatever is sent after the first window was sent for an ack
    locker = make_locker(start=False, resend_batch=10, resend_min_s=3600, resend_max_s=3600)
    old = earlier_boot(locker.journal_path, locker.locker_id, 25)
    backend = backend_for(locker)
    locker.agent.start()
    backend.wait_event("state_snapshot")
    wait_until(lambda: received_seqs(backend, old) == list(range(1, 11)), 5, "first window")
    backend.ack(locker.locker_id, old, 4)  # room for 4 more: the window slides by 4
    wait_until(lambda: max(received_seqs(backend, old)) == 14, 5, "the window slid")
    backend.ack(locker.locker_id, old, 14)
    wait_until(lambda: max(received_seqs(backend, old)) == 24, 5, "the next window")
    backend.ack(locker.locker_id, old, 24)
    wait_until(lambda: max(received_seqs(backend, old)) == 25, 5, "the last entry")
    assert sorted(received_seqs(backend, old)) == list(range(1, 26))  # each sent once


def test_an_unanswered_window_is_sent_again_after_the_backoff_and_goes_no_further(
        make_locker: Callable[..., Locker], backend_for: Callable[..., FakeBackend]) -> None:
    locker = make_locker(start=False, resend_batch=10, resend_min_s=0.2, resend_max_s=0.4)
    old = earlier_boot(locker.journal_path, locker.locker_id, 25)
    backend = backend_for(locker)
    locker.agent.start()
    wait_until(lambda: received_seqs(backend, old).count(1) >= 3, 10, "two resends")
    assert set(received_seqs(backend, old)) == set(range(1, 11))


def test_new_events_right_after_the_window_are_not_sent_again_when_it_slides(
        make_locker: Callable[..., Locker], backend_for: Callable[..., FakeBackend]) -> None:
    locker = make_locker(start=False, resend_min_s=3600, resend_max_s=3600)
    old = earlier_boot(locker.journal_path, locker.locker_id, 3)
    backend = backend_for(locker)
    locker.agent.start()
    snapshot = backend.wait_event("state_snapshot")  # published right after the window
    backend.ack(locker.locker_id, old, 1)  # the window slides: nothing new to send
    command = backend.command(locker.locker_id, p.SetInService())
    backend.wait_result(command.corr_id, "done")  # the ack was handled before the command
    assert [e.msg_id for e in backend.events("state_snapshot")] == [snapshot.msg_id]
    assert sorted(received_seqs(backend, old)) == [1, 2, 3]
