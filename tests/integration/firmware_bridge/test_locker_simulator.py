"""A small fleet of simulated lockers in one process, driven through the console commands."""

from __future__ import annotations

import io
from pathlib import Path

from locker_harness import (
    SHARED_BROKER,
    FakeBackend,
    identity_for,
    unique_locker_id,
    wait_until,
)

from firmware_bridge import protocol as p
from firmware_bridge.simulator import Fleet, execute, load_compartments, run_console


def test_a_fleet_comes_online_and_obeys_each_locker_separately(tmp_path: Path) -> None:
    ids = [unique_locker_id("F") for _ in range(5)]
    fleet = Fleet.build(ids, [1, 2, 3], *SHARED_BROKER, tmp_path,
                        identities={i: identity_for(i) for i in ids})
    backend = FakeBackend(ids, *SHARED_BROKER)
    try:
        fleet.start()
        wait_until(lambda: {e.locker_id for e in backend.events("state_snapshot")} == set(ids), 10)
        command = backend.command(ids[2], p.OpenCompartment(purpose="deposit", compartment=2))
        backend.wait_result(command.corr_id, "done")
        out = io.StringIO()
        run_console(fleet, io.StringIO(f"{ids[2]} close 2 occupied\nlist\nbogus\nquit\n"), out)
        assert out.getvalue().splitlines() == [
            "ok",
            " ".join(sorted(ids)),
            "error: unknown locker 'bogus'",
        ]
        closed = backend.wait_event("door_closed")
        assert closed.locker_id == ids[2] and closed.body.occupied is True
        assert [e.locker_id for e in backend.unique_events("door_opened")] == [ids[2]]
    finally:
        fleet.stop()
        backend.close()


def test_console_passes_a_token_with_spaces_verbatim(tmp_path: Path) -> None:
    fleet = Fleet.build([unique_locker_id("F")], [1], "127.0.0.1", 1, tmp_path)
    (locker,) = fleet.lockers.values()
    seen: list[tuple[str, str]] = []
    locker.board.set_input_handler(lambda kind, value: seen.append((kind, value)))
    assert execute(fleet, "scan RO1:AB C D /") == "ok"
    assert execute(fleet, "pin 1234") == "ok"
    assert seen == [("qr", "RO1:AB C D /"), ("pin", "1234")]


def test_compartments_come_from_a_count_or_a_file(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text('{"compartments": [{"number": 3, "size": "S"}, {"number": 1, "size": "L"}]}')
    assert load_compartments(str(config)) == [1, 3]
    assert load_compartments("4") == [1, 2, 3, 4]
