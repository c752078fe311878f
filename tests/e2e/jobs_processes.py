"""Real processes for the end-to-end job tests: ``relay-ops worker`` and ``relay-ops scheduler``
subprocesses, a private ``redis-server`` that a test may kill and restart, and bounded waits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError


def wait_for(condition: Callable[[], object], timeout_s: float = 30,
             what: str | Callable[[], str] = "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    described = what() if callable(what) else what
    raise TimeoutError(f"waited {timeout_s}s for {described or condition}")


class RelayOpsProcess:
    """``relay-ops <command>`` in its own process, its output in a log file."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.command, self.env, self.log = command, env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RelayOpsProcess:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "relay_ops.cli", *self.command],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=self.env["PYTHONPATH"],
                start_new_session=True,  # its own process group, killed as a whole
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL to the whole group if it lingers."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        self.kill_group()
        self.process = None

    def kill_group(self) -> None:
        """SIGKILL this process and every process it started: a machine that died."""
        assert self.process is not None
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces; the fields after its closing parenthesis do not.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


class RedisServer:
    """A redis-server of the test's own, without persistence: a restart loses its data."""

    def __init__(self, port: int, folder: Path) -> None:
        self.port, self.folder = port, folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, 10, "redis-server to answer")

    def _answers(self) -> bool:
        client = Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except RedisError:
            return False
        finally:
            client.close()

    def crash(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None
