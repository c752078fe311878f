from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from locker_harness import (
    SHARED_BROKER,
    Credentials,
    FakeBackend,
    PrivateBroker,
    identity_for,
    unique_locker_id,
    wait_until,
)

from firmware_bridge.agent.agent import LockerAgent
from firmware_bridge.agent.drivers import SimulatedBoard
from firmware_bridge.agent.state import AgentSettings


def fast_settings(**overrides: Any) -> AgentSettings:
    values: dict[str, Any] = {
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
        "resend_min_s": 0.5,
        "resend_max_s": 2.0,
        # Long enough for the backend to answer on a loaded CI machine: a test of the online
        # path must not see the locker decide offline because the answer took 1 s (seen once
        # in 2,000 tests). Tests of the offline fallback set their own, shorter, timeout.
        "forward_timeout_s": 3.0,
        "door_left_open_s": 0.5,
        "heartbeat_s": 3600.0,
        "poll_s": 0.02,
    }
    values.update(overrides)
    return AgentSettings(**values)


class FakeClock:
    def __init__(self) -> None:
        import time

        self.offset = 0.0
        self._time = time.time

    def __call__(self) -> float:
        return self._time() + self.offset


@dataclass
class Locker:
    locker_id: str
    board: SimulatedBoard
    agent: LockerAgent
    journal_path: Path
    clock: FakeClock
    credentials: Credentials = field(init=False)

    def __post_init__(self) -> None:
        self.credentials = Credentials(site=self.locker_id)


@pytest.fixture
def make_locker(
    tmp_path: Path, backend_for: Callable[..., FakeBackend]
) -> Iterator[Callable[..., Locker]]:
    # depends on backend_for so that agents stop (publishing their retained "offline") before
    # the backends clear the retained topics: no test leaves retained messages behind
    started: list[LockerAgent] = []

    def make(
        port: int = SHARED_BROKER[1],
        *,
        compartments: int = 4,
        locker_id: str | None = None,
        start: bool = True,
        **settings: Any,
    ) -> Locker:
        locker_id = locker_id or unique_locker_id()
        board = SimulatedBoard(list(range(1, compartments + 1)))
        clock = FakeClock()
        journal_path = tmp_path / f"{locker_id}.sqlite3"
        agent = LockerAgent(
            locker_id,
            board,
            "127.0.0.1",
            port,
            journal_path,
            settings=fast_settings(**settings),
            clock=clock,
            identity=identity_for(locker_id),
        )
        locker = Locker(locker_id, board, agent, journal_path, clock)
        started.append(agent)  # stopped at teardown if it was started, here or by the test
        if start:
            agent.start()
        return locker

    yield make
    for agent in started:
        agent.stop()


@pytest.fixture
def backend_for() -> Iterator[Callable[..., FakeBackend]]:
    backends: list[FakeBackend] = []

    def connect(locker: Locker, port: int = SHARED_BROKER[1]) -> FakeBackend:
        backend = FakeBackend([locker.locker_id], "127.0.0.1", port)
        backends.append(backend)
        return backend

    yield connect
    for backend in backends:
        backend.close()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    broker = PrivateBroker(tmp_path)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def online_locker(make_locker: Callable[..., Locker], backend_for: Callable[..., FakeBackend]):  # type: ignore[no-untyped-def]
    """A started locker on the shared broker, its backend, and its first snapshot seen."""
    backend_holder: list[FakeBackend] = []

    def build(**kwargs: Any) -> tuple[Locker, FakeBackend]:
        locker = make_locker(start=False, **kwargs)
        backend = backend_for(locker)
        backend_holder.append(backend)
        locker.agent.start()
        backend.wait_event("state_snapshot")
        wait_until(lambda: locker.agent.online, 5, "agent online")
        return locker, backend

    return build
