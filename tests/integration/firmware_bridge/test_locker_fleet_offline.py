"""A fleet through a broker restart (issue 6): 50 lockers lose their broker together, each
serves a PIN pickup alone and journals it; the broker comes back (having forgotten every
session), the lockers reconnect with backoff and jitter and replay; a backend that acknowledges
what it has seen in order ends with every journal drained and every pickup exactly once."""

from __future__ import annotations

import time
from collections import defaultdict

from locker_harness import FakeBackend, seed_journal, wait_until

from firmware_bridge import protocol as p

FLEET = 50


def ack_contiguous(backend: FakeBackend, acked: dict[tuple[str, str], int]) -> None:
    """Acknowledge, per (locker, boot), the longest run of seqs seen from 1: never past a gap."""
    seen: dict[tuple[str, str], set[int]] = defaultdict(set)
    for event in backend.events():
        seen[(event.locker_id, event.boot_id)].add(event.seq)
    for key, seqs in seen.items():
        top = acked.get(key, 0)
        while top + 1 in seqs:
            top += 1
        if top > acked.get(key, 0):
            acked[key] = top
            backend.ack(key[0], key[1], top)


def test_fifty_lockers_offline_together_all_converge(private_broker, make_locker) -> None:
    lockers = []
    for _ in range(FLEET):
        locker = make_locker(private_broker.port, start=False, compartments=2)
        locker.credentials.add_pin("135790", parcel_ref=f"P-{locker.locker_id}", compartment=1)
        seed_journal(locker.journal_path, locker.credentials)
        lockers.append(locker)
    backend = FakeBackend([lk.locker_id for lk in lockers], "127.0.0.1", private_broker.port)
    try:
        for locker in lockers:
            locker.agent.start()
        wait_until(lambda: all(lk.agent.online for lk in lockers), 20, "fleet online")
        acked: dict[tuple[str, str], int] = {}

        private_broker.stop()
        wait_until(lambda: not any(lk.agent.online for lk in lockers), 10, "fleet offline")
        for locker in lockers:
            locker.board.type_pin("135790")
        wait_until(lambda: all(lk.board.open_calls == [1] for lk in lockers), 10, "doors open")
        for locker in lockers:
            locker.board.close_door(1, occupied=False)
        wait_until(lambda: all(
            "door_closed" in [e.type for e in lk.agent.journal.unacked_events()]
            for lk in lockers), 10, "pickups journaled offline")

        started = time.monotonic()
        private_broker.start()

        def converged() -> bool:
            ack_contiguous(backend, acked)
            return all(lk.agent.online and lk.agent.journal.unacked_count() == 0
                       for lk in lockers)

        wait_until(converged, 60, "every journal replayed and acknowledged")
        took = time.monotonic() - started
    finally:
        backend.close()

    for locker in lockers:
        events = [e for e in backend.unique_events() if e.locker_id == locker.locker_id]
        by_boot: dict[str, list[int]] = defaultdict(list)
        for event in events:
            by_boot[event.boot_id].append(event.seq)
        for seqs in by_boot.values():  # each entry once, none missing
            assert sorted(seqs) == list(range(1, len(seqs) + 1))
        pickups = [e.body for e in events if e.type == "offline_pickup"]
        assert len(pickups) == 1, locker.locker_id
        assert isinstance(pickups[0], p.OfflinePickup)
        assert pickups[0].parcel_ref == f"P-{locker.locker_id}"
        assert locker.board.open_calls == [1]
    assert took < 60
