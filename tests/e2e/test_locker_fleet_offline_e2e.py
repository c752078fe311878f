"""A fleet through a broker restart with the real backend (issue 6): web, bridge and one
simulator process serving N lockers over a Mosquitto of the test's own. Each locker gets a
parcel, the broker stops, every locker serves a PIN pickup alone, the broker comes back; every
pickup is applied once and every journal drains."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.locker_stack import Stack, wait_until
from tests.integration.firmware_bridge.locker_harness import PrivateBroker

pytestmark = pytest.mark.slow

FLEET = 50


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    own = PrivateBroker(tmp_path)
    own.start()
    yield own
    own.stop()


class FleetStack(Stack):
    def __init__(self, tmp: Path, broker: str, count: int) -> None:
        super().__init__(tmp, broker=broker, LOCKER_OPEN_TTL_S=60)
        from firmware_bridge.identity import write_bundle
        from relay_ops.services import locker_identity, locker_registry
        from relay_ops.services.principal import SYSTEM

        self.sites = {self.code: self.site_id}
        for n in range(2, count + 1):
            code = f"{self.prefix}-{n:04d}"
            self.sites[code] = locker_registry.register_locker(self.ctx, SYSTEM, {
                "code": code, "name": f"Casier {n}", "locker_model": "mini-6",
                "address": "Place", "postcode": "44440", "city": "Riaillé",
                "latitude": 47.5, "longitude": -1.3})["id"]
            write_bundle(tmp / "bundles" / f"{code}.json",
                         locker_identity.provision(self.ctx, SYSTEM, self.sites[code]))
        argv = self.locker.argv
        argv[argv.index("--lockers") + 1] = str(count)

    def state(self, code: str) -> dict[str, object]:
        return json.loads(self.locker.do(f"{code} state"))  # type: ignore[no-any-return]

    def link(self, code: str) -> dict[str, object]:
        from relay_ops.services import locker_views
        from relay_ops.services.principal import SYSTEM

        return locker_views.locker_view(self.ctx, SYSTEM, self.sites[code])["link"]  # type: ignore[no-any-return]


def test_fifty_lockers_offline_together_converge_with_the_real_backend(
        tmp_path: Path, broker: PrivateBroker) -> None:
    stack = FleetStack(tmp_path, f"127.0.0.1:{broker.port}", FLEET)
    try:
        stack.start()
        codes = sorted(stack.sites)
        wait_until(lambda: all(stack.link(c)["online"] for c in codes), 60, "fleet online")
        numbers = {c: f"FLEET{i:07d}" for i, c in enumerate(codes)}
        body = {"reference": "R-FLEET", "parcels": [
            {"tracking_number": numbers[c], "site": c, "size_class": "S",
             "recipient": {"name": "Jeanne", "phone": "+33612345678"}} for c in codes]}
        status, answer = stack.carrier("POST", "/manifests", body)
        assert status == 201 and answer["accepted"] == FLEET, answer
        doors = {}
        for code in codes:
            status, session = stack.carrier("POST", f"/lockers/{stack.sites[code]}/sessions")
            assert status == 201, session
            status, answer = stack.carrier("POST", f"/locker-sessions/{session['id']}/deposits",
                                           {"tracking_number": numbers[code]})
            assert status == 200, answer
            doors[code] = door = int(answer["compartment"])
            wait_until(lambda c=code, d=door: stack.state(c)["doors"][str(d)][0] == "open", 20,
                       f"{code} door open")
            assert stack.locker.do(f"{code} close {door} occupied") == "ok"
            wait_until(lambda c=code: stack.state_of(numbers[c]) == "ready_for_pickup", 20, code)
            stack.carrier("POST", f"/locker-sessions/{session['id']}/close")
        pins = {c: stack.http("GET", stack.tracking_path(numbers[c]))[1]["pickup_code"]
                for c in codes}
        wait_until(lambda: all(stack.link(c)["credential_version_held"]
                               == stack.link(c)["credential_version_sent"] for c in codes),
                   60, "fleet synced")

        broker.stop()
        wait_until(lambda: not any(stack.state(c)["online"] for c in codes), 20, "offline")
        for code in codes:
            assert stack.locker.do(f"{code} pin {pins[code]}") == "ok"
        wait_until(lambda: all(stack.state(c)["doors"][str(doors[c])][0] == "open"
                               for c in codes), 20, "doors open offline")
        for code in codes:
            assert stack.locker.do(f"{code} close {doors[code]} empty") == "ok"
        assert all(stack.state_of(numbers[c]) == "ready_for_pickup" for c in codes)

        broker.start()
        wait_until(lambda: all(stack.state_of(numbers[c]) == "picked_up" for c in codes), 90,
                   "every offline pickup applied")
        wait_until(lambda: all(stack.state(c)["journal_waiting"] == 0 for c in codes), 60,
                   "every journal drained")
        for code in codes:
            assert stack.actions(numbers[code]).count("pick_up") == 1, code
            assert stack.actions(numbers[code]).count("offline_pickup_verified") == 1, code
            link = stack.link(code)
            assert link["applied"] == {"boot_id": link["last_journal_entry"]["boot_id"],  # type: ignore[index]
                                       "seq": link["last_journal_entry"]["seq"]}  # type: ignore[index]
    finally:
        stack.stop()
