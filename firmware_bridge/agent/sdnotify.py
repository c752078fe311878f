"""systemd's notify protocol, spoken directly (one datagram on `$NOTIFY_SOCKET`): the agent
says READY=1 once connected to its board and journal, then WATCHDOG=1 from its worker loop,
so a worker stuck on a bus or a lock is restarted by systemd (`WatchdogSec=`)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `message` (e.g. "READY=1") to systemd; False when not run by systemd."""
    address = (environ if environ is not None else os.environ).get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as error:
        log.warning("systemd notification %r not sent: %s", message, error)
        return False
    return True


class Watchdog:
    """Pings at most twice per watchdog period (`$WATCHDOG_USEC`, set by systemd from
    `WatchdogSec=`); does nothing when systemd asked for no watchdog."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = dict(environ if environ is not None else os.environ)
        self._environ = env
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        meant_for_us = not pid or pid == str(os.getpid())
        self.interval_s = int(usec) / 1e6 / 2 if usec.isdigit() and meant_for_us else None
        self._last = float("-inf")
        self._lock = threading.Lock()

    def ping(self) -> None:
        if self.interval_s is None:
            return
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.interval_s:
                return
            self._last = now
        notify("WATCHDOG=1", self._environ)
