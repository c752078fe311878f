"""The web service as the Dockerfile runs it: gunicorn with config/gunicorn.conf.py, in a
process group of its own, its output in ``gunicorn.log``, stopped (killed if it must be)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.e2e.jobs_processes import wait_for

ROOT = Path(__file__).resolve().parents[2]


def get(port: int, path: str, headers: dict[str, str] | None = None) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - loopback
        return str(answer.read().decode())


def answers(port: int) -> bool:
    try:
        get(port, "/health")
    except OSError:
        return False
    return True


@contextmanager
def gunicorn(env: dict[str, str], log: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Started with ``env`` (its RELAY_OPS_BIND on 127.0.0.1:``port``) and answering."""
    with log.open("ab") as out:
        web = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py"],
                               cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        wait_for(lambda: answers(port), 30, "gunicorn to answer")
        yield web
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        try:
            web.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(web.pid, signal.SIGKILL)
            web.wait(timeout=10)
