import sqlite3
from pathlib import Path

import pytest

from firmware_bridge import protocol as p
from firmware_bridge.agent.journal import OPENED, PENDING, Journal


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "j.sqlite3")


def append(journal: Journal, boot: str, compartment: int = 1) -> p.EventEnvelope:
    body = p.DoorClosed(compartment=compartment, occupied=None)
    return journal.append_event(boot, lambda seq: p.make_event("L1", boot, seq, body))


def test_the_journal_is_durable_sqlite_in_wal_mode(journal: Journal) -> None:
    with sqlite3.connect(journal.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_seq_counts_per_boot_and_acks_trim_per_boot(journal: Journal) -> None:
    first = journal.start_boot()
    assert [append(journal, first).seq for _ in range(3)] == [1, 2, 3]
    second = journal.start_boot()
    assert append(journal, second).seq == 1
    assert [(e.boot_id, e.seq) for e in journal.unacked_events()] == [
        (first, 1),
        (first, 2),
        (first, 3),
        (second, 1),
    ]
    assert journal.ack(first, 2) == 2
    assert journal.ack(first, 2) == 0  # a duplicate ack changes nothing
    assert journal.acked_seq(first) == 2
    assert [(e.boot_id, e.seq) for e in journal.unacked_events()] == [(first, 3), (second, 1)]
    assert journal.ack(second, 99) == 1
    assert journal.acked_seq(second) == 1  # never beyond what was sent


def test_stored_payload_is_the_wire_message(journal: Journal) -> None:
    boot = journal.start_boot()
    event = append(journal, boot)
    (stored,) = journal.events_in_range(boot, 1, 1)
    assert p.parse_message(p.evt_topic("L1"), stored.payload) == event


def test_atomic_groups_writes_and_rolls_back_on_error(journal: Journal) -> None:
    boot = journal.start_boot()
    with pytest.raises(RuntimeError), journal.atomic():
        journal.record_use("cred-1", "qr", "P1", 2)
        append(journal, boot)
        raise RuntimeError("power cut")
    assert journal.use_of("cred-1") is None
    assert journal.unacked_count() == 0 and journal.last_seq(boot) == 0


def test_uses_commands_and_state_survive_a_reopen(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    journal.record_use("cred-1", "pin", "P1", 3)
    journal.record_use("cred-2", "qr", "P2", 4)
    journal.set_use_outcome("cred-2", OPENED)
    journal.record_command("m1", "c1", "open_compartment", "done", None)
    journal.store_credentials(7, "{}")
    journal.set_meta("keypad_throttle", {"failures": 2})
    journal.close()
    again = Journal(tmp_path / "j.sqlite3")
    assert [u.credential_id for u in again.uses_with_outcome(PENDING)] == ["cred-1"]
    assert again.use_of("cred-2").outcome == OPENED  # type: ignore[union-attr]
    assert again.command_record("m2", "c1").status == "done"  # type: ignore[union-attr]
    assert again.command_record("m1", "other").corr_id == "c1"  # type: ignore[union-attr]
    assert again.command_record("m9", "c9") is None
    assert again.credentials() == (7, "{}")
    assert again.get_meta("keypad_throttle", {}) == {"failures": 2}
    again.close()
