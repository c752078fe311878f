"""Issue 14: a login crossing a network in clear is refused unless a setting says the network
is trusted; the loopback (the demo, a broker on the same host) is fine."""

from __future__ import annotations

import pytest

from firmware_bridge.bridge import broker_login
from firmware_bridge.tls import BrokerLogin


@pytest.mark.parametrize("url, tls, port", [
    ("mqtts://broker.example.org", True, 8883),
    ("mqtt://broker.example.org", False, 1883),
    ("mqtts://10.0.0.5:9883", True, 9883),
])
def test_broker_urls(url: str, tls: bool, port: int) -> None:
    login = BrokerLogin.from_url(url)
    assert (login.tls, login.port) == (tls, port)


@pytest.mark.parametrize("url", ["http://broker", "mqtt://", "broker:1883"])
def test_a_broker_url_that_is_not_mqtt_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="broker URL"):
        BrokerLogin.from_url(url)


def test_plain_tcp_off_the_loopback_is_refused_unless_allowed() -> None:
    remote = BrokerLogin.from_url("mqtt://broker.example.org")
    with pytest.raises(ValueError, match="plain TCP"):
        remote.refuse_plaintext(allowed=False)
    remote.refuse_plaintext(allowed=True)
    BrokerLogin.from_url("mqtt://127.0.0.1").refuse_plaintext(allowed=False)
    BrokerLogin.from_url("mqtt://localhost").refuse_plaintext(allowed=False)
    BrokerLogin.from_url("mqtts://broker.example.org").refuse_plaintext(allowed=False)


def test_the_bridge_refuses_a_plain_broker_in_production_only() -> None:
    production = {"ENV": "production"}
    with pytest.raises(ValueError, match="plain TCP"):
        broker_login(production, "mosquitto", 1883)
    assert broker_login({**production, "MQTT_ALLOW_PLAINTEXT_BROKER": True}, "mosquitto", 1883)
    assert broker_login({**production, "MQTT_TLS": True}, "mosquitto", 8883).tls
    assert not broker_login({"ENV": "development"}, "mosquitto", 1883).tls
