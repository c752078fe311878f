"""What signatures and TLS cost on the locker link (issue 14), measured in one run.

    .venv/bin/python bench/link_security.py --round-trips 400 --signatures 3000

1. **Signatures**: for the three messages of a QR pickup (the locker's `credential_presented`,
   the backend's `open_compartment`, the locker's `door_opened`), the time to sign one (the
   sender) and to parse and verify it (the receiver), `cryptography`'s Ed25519.
2. **TLS**: a QoS 1 round trip (publish, an echo client republishes, the first receives it:
   the two broker hops of scan → bridge → locker) on two private Mosquittos started here, one
   plain as config/mosquitto.conf (loopback, anonymous), one with the shipped production files
   (config/mosquitto/production.conf: TLS, logins, ACL), the same clients and payload.

A QR pickup pays 3 signatures, 3 verifications and two TLS hops more than before: the sum of
the medians (and of the p99s) is the added cost of QR-to-door. Results in
bench/results/link-security-<time>.json and docs/benchmarks.md. Everything runs on 127.0.0.1
and every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from firmware_bridge import protocol as p  # noqa: E402
from firmware_bridge.net import disable_nagle  # noqa: E402
from firmware_bridge.tls import BrokerLogin, write_deployment_certs  # noqa: E402

LOCKER = "bench-locker"


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 4),
            "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 4)}


def pickup_messages() -> list[p.Envelope]:
    presentation = uuid.uuid4()
    return [
        p.make_event(LOCKER, "boot", 7, p.CredentialPresented(
            presentation_id=presentation, kind="qr", result="forwarded", token="RO1:" + "A" * 150)),
        p.make_command(LOCKER, p.OpenCompartment(
            purpose="pickup", compartment=4, parcel_ref="6A12345678901",
            credential_id="jti-1234", presentation_id=presentation), ctr=12),
        p.make_event(LOCKER, "boot", 8, p.DoorOpened(
            compartment=4, purpose="pickup", credential_id="jti-1234")),
    ]


def signatures(rounds: int) -> dict[str, Any]:
    key = Ed25519PrivateKey.generate()
    keys = {"k": key.public_key()}
    result: dict[str, Any] = {}
    for message in pickup_messages():
        topic = (p.cmd_topic(LOCKER) if isinstance(message, p.CommandEnvelope)
                 else p.evt_topic(LOCKER))
        signing, verifying, parsing = [], [], []
        for _ in range(rounds):
            start = time.perf_counter()
            wire = p.sign(message, key, "k")
            signing.append(time.perf_counter() - start)
            start = time.perf_counter()
            received = p.receive(topic, wire)
            parsed = time.perf_counter()
            assert p.check_signature(received, keys) is None
            verifying.append(time.perf_counter() - parsed)
            parsing.append(parsed - start)
        result[message.type] = {"sign": percentiles(signing), "verify": percentiles(verifying),
                                "parse_unchanged": percentiles(parsing)}
    return result


class Broker:
    def __init__(self, directory: Path, config: str, port: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "mosquitto.conf").write_text(config)
        self.port = port
        self.process = subprocess.Popen(["mosquitto", "-c", str(directory / "mosquitto.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def plain_broker(directory: Path) -> tuple[Broker, BrokerLogin, BrokerLogin]:
    port = free_port()
    broker = Broker(directory, f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                    "set_tcp_nodelay true\n", port)
    login = BrokerLogin("127.0.0.1", port)
    return broker, login, login


def production_broker(directory: Path) -> tuple[Broker, BrokerLogin, BrokerLogin]:
    """The shipped production files, as tests/integration/.../test_production_broker.py uses
    them: a locker login and the bridge's."""
    from relay_ops.services.locker_identity import mosquitto_password_hash

    directory.mkdir(parents=True, exist_ok=True)
    write_deployment_certs(directory, ["127.0.0.1"], datetime.now(UTC))
    (directory / "data").mkdir(exist_ok=True)
    (directory / "acl").write_text((ROOT / "config" / "mosquitto" / "acl").read_text())
    (directory / "passwd").write_text(f"{LOCKER}:{mosquitto_password_hash('locker-pw')}\n"
                                      f"relayops-bridge:{mosquitto_password_hash('bridge-pw')}\n")
    port = free_port()
    config = (ROOT / "config" / "mosquitto" / "production.conf").read_text()
    config = config.replace("listener 8883\n", f"listener {port} 127.0.0.1\n")
    config = config.replace("user mosquitto\n", "user root\n")
    config = config.replace("/mosquitto/config/", f"{directory}/")
    config = config.replace("/mosquitto/data/", f"{directory}/data/")
    broker = Broker(directory, config, port)
    ca = (directory / "ca.crt").read_text()
    return (broker,
            BrokerLogin("127.0.0.1", port, tls=True, ca_pem=ca, username="relayops-bridge",
                        password="bridge-pw"),
            BrokerLogin("127.0.0.1", port, tls=True, ca_pem=ca, username=LOCKER,
                        password="locker-pw"))


def client(login: BrokerLogin, on_message: Any = None) -> mqtt.Client:
    connected = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}")
    login.apply(c)

    def on_connect(cl: mqtt.Client, *_a: Any) -> None:
        disable_nagle(cl)
        connected.set()

    c.on_connect = on_connect
    if on_message is not None:
        c.on_message = on_message
    c.connect(login.host, login.port)
    c.loop_start()
    if not connected.wait(10):
        raise RuntimeError(f"no connection to {login.host}:{login.port}")
    return c


def round_trips(bridge_login: BrokerLogin, locker_login: BrokerLogin, count: int
                ) -> dict[str, float]:
    """The bridge publishes a command; the locker answers on its event topic; timed at the
    bridge: the two hops of a QR pickup's answer."""
    answered = threading.Event()
    payload = b"x" * 420
    locker = client(locker_login)
    locker.on_message = lambda cl, _u, m: cl.publish(p.evt_topic(LOCKER), m.payload, qos=1)
    locker.subscribe(p.cmd_topic(LOCKER), 1)
    bridge = client(bridge_login, lambda *_a: answered.set())
    bridge.subscribe(p.evt_topic(LOCKER), 1)
    time.sleep(0.5)
    samples = []
    try:
        for _ in range(count):
            answered.clear()
            start = time.perf_counter()
            bridge.publish(p.cmd_topic(LOCKER), payload, qos=1)
            if not answered.wait(5):
                raise RuntimeError("a round trip got no answer")
            samples.append(time.perf_counter() - start)
            time.sleep(0.005)
    finally:
        for c in (bridge, locker):
            c.loop_stop()
            c.disconnect()
    return percentiles(samples[10:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--round-trips", type=int, default=400)
    parser.add_argument("--signatures", type=int, default=3000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="relayops-bench-link-"))
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg": os.getloadavg()},
        "signatures": signatures(args.signatures),
    }
    for name, make in (("plain", plain_broker), ("tls_login_acl", production_broker)):
        broker, bridge_login, locker_login = make(tmp / name)
        try:
            result[f"round_trip_{name}"] = round_trips(bridge_login, locker_login,
                                                       args.round_trips)
        finally:
            broker.stop()
    crypto = result["signatures"]
    added: dict[str, float] = {}
    for stat in ("p50_ms", "p99_ms"):
        per_message = sum(m["sign"][stat] + m["verify"][stat] for m in crypto.values())
        tls = (result["round_trip_tls_login_acl"][stat] - result["round_trip_plain"][stat])
        added[stat] = round(per_message + max(tls, 0.0), 3)
    result["qr_to_door_added_ms"] = added
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    out = ROOT / "bench" / "results" / (
        f"link-security-{result['when'][:19].replace(':', '')}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
