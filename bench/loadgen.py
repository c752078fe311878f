"""An open-loop (constant-rate) HTTP/1.1 load generator on keep-alive connections.

Request i is due at ``start + i / rate`` whether or not earlier answers have come back; its
latency is counted from that due time, so a server that falls behind is charged for the queue
it builds (no coordinated omission). Connections are opened as needed up to ``max_connections``;
a request that finds them all busy waits, and that wait is part of its latency.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Result:
    rate: float
    duration: float
    scheduled: int = 0
    completed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, from the due time
    max_start_lag: float = 0.0  # how late the generator itself sent a request
    connections: int = 0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    ok_numbers: list[int] = field(default_factory=list)  # request indexes answered 2xx

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


class _Pool:
    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self.opened = 0
        self.peak = 0

    async def get(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle.empty() and self.opened < self.limit:
            self.opened += 1
            self.peak = max(self.peak, self.opened)
            try:
                return await asyncio.open_connection(self.host, self.port)
            except Exception:
                self.opened -= 1
                raise
        return await self.idle.get()

    def put(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.idle.put_nowait(conn)

    def discard(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.opened -= 1
        conn[1].close()

    def close(self) -> None:
        while not self.idle.empty():
            self.idle.get_nowait()[1].close()


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    payload: bytes) -> tuple[int, bool]:
    writer.write(payload)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, keep = 0, not lines[0].startswith("HTTP/1.0")
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            keep = value.strip().lower() != "close"
    if length:
        await reader.readexactly(length)
    return status, keep


async def _run(host: str, port: int, rate: float, duration: float,
               make_request: Callable[[int], bytes], max_connections: int,
               drain_timeout: float) -> Result:
    result = Result(rate=rate, duration=duration)
    pool = _Pool(host, port, max_connections)
    loop = asyncio.get_running_loop()
    total = int(rate * duration)
    tasks: list[asyncio.Task[None]] = []

    async def one(i: int, due: float) -> None:
        conn = None
        try:
            conn = await pool.get()
            status, keep = await _exchange(*conn, make_request(i))
        except Exception as err:  # a refused or broken connection is a failed request
            result.errors[type(err).__name__] += 1
            if conn is not None:
                pool.discard(conn)
            return
        result.latencies.append(loop.time() - due)
        result.statuses[status] += 1
        result.completed += 1
        if 200 <= status < 300:
            result.ok_numbers.append(i)
        if keep:
            pool.put(conn)
        else:
            pool.discard(conn)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    start = loop.time() + 0.05
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        result.max_start_lag = max(result.max_start_lag, loop.time() - due)
        tasks.append(asyncio.create_task(one(i, due)))
        result.scheduled += 1
    done, pending = await asyncio.wait(tasks, timeout=drain_timeout) if tasks else (set(), set())
    for task in pending:
        task.cancel()
        result.errors["unfinished"] += 1
    result.wall_seconds = time.perf_counter() - wall0
    result.cpu_seconds = time.process_time() - cpu0
    result.connections = pool.peak
    pool.close()
    return result


def constant_rate(host: str, port: int, rate: float, duration: float,
                  make_request: Callable[[int], bytes], max_connections: int = 64,
                  drain_timeout: float = 30.0) -> Result:
    """Send ``rate * duration`` requests at a constant rate; request i is ``make_request(i)``."""
    return asyncio.run(
        _run(host, port, rate, duration, make_request, max_connections, drain_timeout)
    )
