"""One clock: product code reads the wall clock in one module per package, nowhere else.

Since 2026-12-01 the suite went red because rows were stamped by the wall clock while the use
cases compared them with the tests' clock. Every other module must take the time from a
context's clock (``Ctx.clock``, ``Database.clock``, the agent's ``clock``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Benchmarks are left out: they time real runs.
PACKAGES = ("relay_ops", "firmware_bridge")
# The only modules allowed to read the wall clock.
CLOCKS = {Path("relay_ops/clock.py"), Path("firmware_bridge/clock.py")}
# (module or class name, attribute) pairs that read the wall clock.
WALL_CLOCK_READS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "localtime"),
    ("time", "gmtime"),
    ("time", "ctime"),
    ("time", "strftime"),
}


def wall_clock_reads(source: str) -> list[tuple[int, str]]:
    """Every ``datetime.now``-like reference (called or passed as a function) in ``source``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and (owner := _name(node.value)):
            if (owner, node.attr) in WALL_CLOCK_READS:
                found.append((node.lineno, f"{owner}.{node.attr}"))
        elif isinstance(node, ast.ImportFrom) and node.module in ("time", "datetime"):
            for alias in node.names:
                if (node.module, alias.name) in WALL_CLOCK_READS:
                    found.append((node.lineno, f"from {node.module} import {alias.name}"))
    return found


def _name(node: ast.expr) -> str | None:
    """``datetime`` for ``datetime`` and for ``datetime.datetime``."""
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def product_modules() -> list[Path]:
    return sorted(
        path.relative_to(ROOT)
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    )


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from datetime import datetime, UTC\nx = datetime.now(UTC)", ["datetime.now"]),
        ("import datetime\nx = datetime.date.today()", ["date.today"]),
        ("import time\ndef f(clock=time.time): ...", ["time.time"]),
        ("from time import time", ["from time import time"]),
        ("from datetime import date\nd = date(2026, 1, 1)", []),
        ("import time\ntime.monotonic(); time.sleep(0)", []),
    ],
)
def test_the_scan_finds_wall_clock_reads(source: str, expected: list[str]) -> None:
    assert [what for _, what in wall_clock_reads(source)] == expected


def test_only_the_clock_modules_read_the_wall_clock() -> None:
    offenders = [
        f"{path}:{line}: {what}"
        for path in product_modules()
        if path not in CLOCKS
        for line, what in wall_clock_reads((ROOT / path).read_text())
    ]
    assert offenders == []


def test_the_clock_modules_are_scanned() -> None:
    assert CLOCKS <= set(product_modules())
