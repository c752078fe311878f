"""The README's curl tour, run as printed against a real demo server process.

Only the port and the message file path are changed, so the test never touches a developer's
own demo on port 5000 or their instance folder.
"""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tour_script() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## A tour with curl", 1)[1]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def wait_until_up(url: str, process: subprocess.Popen, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "the demo server died at start"
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback only
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


def test_the_readme_tour_works_as_printed(tmp_path: Path) -> None:
    port = free_port()
    messages = tmp_path / "notifications.jsonl"
    env = dict(os.environ, RELAY_OPS_DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
               RELAY_OPS_NOTIFY_FILE_PATH=str(messages))
    log = (tmp_path / "demo.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "relay_ops.cli", "demo", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", server)
        script = tour_script().replace("5000", str(port)).replace(
            "instance/notifications.jsonl", str(messages))
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                                text=True, timeout=60, cwd=tmp_path)
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '"accepted": 1, "rejected": 1' in out
    assert '"reason": "invalid-tracking-number"' in out
    assert '"status": "checked_in"' in out and '"location": "A1"' in out
    assert '"status": "picked_up"' in out
    assert '"action": "pick_up"' in out
