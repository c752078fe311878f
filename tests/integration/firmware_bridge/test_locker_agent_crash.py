"""The agent killed with SIGKILL mid-pickup, then restarted: the journal is replayed, nothing is
lost and nothing is doubled. The agent runs as a real process driven through its console."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from locker_harness import (
    SHARED_BROKER,
    Credentials,
    FakeBackend,
    agent_env,
    free_port,
    seed_journal,
    unique_locker_id,
    wait_until,
    write_test_bundle,
)


def start_agent(locker_id: str, journal: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firmware_bridge.agent",
            "--locker-id",
            locker_id,
            "--journal",
            str(journal),
            "--broker",
            f"127.0.0.1:{port}",
            "--compartments",
            "4",
            "--reconnect-min",
            "0.1",
            "--reconnect-max",
            "0.5",
            "--forward-timeout",
            "0.3",
            "--log-level",
            "WARNING",
            "--bundles",
            str(write_test_bundle(journal.parent / "bundles", locker_id)),
            *extra,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=agent_env(),
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def console(process: subprocess.Popen[str], line: str) -> str:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()
    return process.stdout.readline().strip()


def journal_rows(journal: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5) as db:
        return db.execute(sql).fetchall()


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()


@pytest.fixture
def locker(tmp_path: Path):  # type: ignore[no-untyped-def]
    locker_id = unique_locker_id("K")
    credentials = Credentials(site=locker_id)
    journal = tmp_path / "journal.sqlite3"
    seed_journal(journal, credentials)
    backend = FakeBackend([locker_id], *SHARED_BROKER)
    processes: list[subprocess.Popen[str]] = []
    yield locker_id, credentials, journal, backend, processes
    for process in processes:
        stop(process)
    backend.close()


def test_killed_while_the_lock_turns_then_restarted(locker) -> None:
    locker_id, credentials, journal, backend, processes = locker
    token, claims = credentials.token(parcel_id=4242, compartment=2)
    offline_port = free_port()  # nothing listens there: the locker is offline
    first = start_agent(locker_id, journal, offline_port, "--open-delay", "5")
    processes.append(first)
    console(first, f"scan {token}")
    wait_until(
        lambda: journal_rows(journal, "SELECT outcome FROM uses") == [("pending",)],
        5,
        "use journaled before the door opens",
    )
    first.send_signal(signal.SIGKILL)
    first.wait(5)

    second = start_agent(locker_id, journal, SHARED_BROKER[1])
    processes.append(second)
    fault = backend.wait_event("fault", lambda b: b.code == "use_interrupted", timeout=10)
    assert fault.body.credential_id == claims.jti and fault.body.compartment == 2
    backend.wait_event("state_snapshot", lambda _b: True)
    first_boot = backend.wait_event("offline_pickup").boot_id
    assert first_boot != fault.boot_id
    events = backend.unique_events()
    pickups = [e for e in events if e.type == "offline_pickup"]
    assert [(e.body.credential_id, e.body.compartment) for e in pickups] == [(claims.jti, 2)]
    first_boot_seqs = [e.seq for e in events if e.boot_id == first_boot]
    assert first_boot_seqs == list(range(1, len(first_boot_seqs) + 1))
    assert journal_rows(journal, "SELECT outcome FROM uses") == [("interrupted",)]

    # the interrupted use did not open anything: the resident may try again, once
    console(second, f"scan {token}")
    opened = backend.wait_event("door_opened", lambda b: b.credential_id == claims.jti)
    assert opened.body.compartment == 2
    console(second, f"scan {token}")
    refused = backend.wait_event("credential_presented", lambda b: b.result == "refused", timeout=5)
    assert refused.body.reason == "already_used"


def test_killed_after_an_offline_pickup_then_restarted_online(locker) -> None:
    locker_id, credentials, journal, backend, processes = locker
    pin_id = credentials.add_pin("135790", parcel_ref="P-77", compartment=3)
    seed_journal(journal, credentials)
    first = start_agent(locker_id, journal, free_port())
    processes.append(first)
    console(first, "pin 135790")
    wait_until(
        lambda: journal_rows(journal, "SELECT outcome FROM uses") == [("opened",)], 5, "door open"
    )
    assert console(first, "close 3 empty") == "ok"
    wait_until(
        lambda: (
            journal_rows(journal, "SELECT COUNT(*) FROM outbox WHERE type = 'door_closed'")
            == [(1,)]
        ),
        5,
        "door_closed journaled",
    )
    first.send_signal(signal.SIGKILL)
    first.wait(5)
    journaled = journal_rows(journal, "SELECT boot_id, seq, type FROM outbox ORDER BY seq")

    second = start_agent(locker_id, journal, SHARED_BROKER[1])
    processes.append(second)
    first_boot = journaled[0][0]
    wait_until(
        lambda: (
            {(e.boot_id, e.seq) for e in backend.events()}
            >= {(boot, seq) for boot, seq, _ in journaled}
        ),
        10,
        "every journaled event of the killed process",
    )
    events = [e for e in backend.unique_events() if e.boot_id == first_boot]
    assert [(e.seq, e.type) for e in events] == [(seq, type_) for _, seq, type_ in journaled]
    assert [e.type for e in events] == [
        "offline_pickup",
        "door_opened",
        "door_closed",
    ]
    assert events[0].body.credential_id == pin_id
    assert not [e for e in backend.events("fault") if e.body.code == "use_interrupted"]
    # spent stays spent across the crash: the same PIN is refused
    console(second, "pin 135790")
    refused = backend.wait_event("credential_presented", lambda b: b.result == "refused")
    assert refused.body.reason == "already_used"
    backend.ack(locker_id, first_boot, journaled[-1][1])
    wait_until(
        lambda: (
            journal_rows(journal, f"SELECT COUNT(*) FROM outbox WHERE boot_id = '{first_boot}'")  # noqa: S608
            == [(0,)]
        ),
        5,
        "first boot's events trimmed",
    )


def test_the_last_will_says_offline_when_the_agent_dies(locker) -> None:
    locker_id, _credentials, journal, backend, processes = locker
    agent = start_agent(locker_id, journal, SHARED_BROKER[1])
    processes.append(agent)
    wait_until(lambda: backend.retained_status(locker_id) == "online", 5, "online")
    agent.send_signal(signal.SIGKILL)
    agent.wait(5)
    # the socket closes without DISCONNECT: the broker publishes the will at once
    wait_until(lambda: backend.retained_status(locker_id) == "offline", 5, "will")
