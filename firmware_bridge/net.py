"""Socket tuning shared by both ends of the locker link.

MQTT messages are small and each waits for an answer (PUBACK, then an application reply). With
Nagle's algorithm on, a small write that follows another one not yet acknowledged by TCP waits
for that acknowledgement, which the peer delays up to 40 ms: measured here, a QoS 1 round trip
through Mosquitto took 88 ms with Nagle on both clients and the broker, 44 ms with it off on
the clients only, and under 1 ms with it off everywhere (`set_tcp_nodelay true` in
config/mosquitto.conf). See docs/benchmarks.md, "Lockers".
"""

from __future__ import annotations

import logging
import socket

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)


def disable_nagle(client: mqtt.Client) -> None:
    """Call from on_connect: the socket exists then (a new one at every reconnect)."""
    sock = client.socket()
    try:
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as error:  # e.g. a WebSocket or TLS wrapper without the option
        log.debug("TCP_NODELAY not set: %s", error)
