"""Helpers that read like the feature: a small world of sites, carriers and staff, and an API
client that carries a bearer token."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from relay_ops.db.models import Base, CredentialParcel, Location, Parcel, PickupCredential
from relay_ops.domain.lifecycle import HELD_STATES
from relay_ops.services import accounts, credentials, manifests, sites, staff_sign_in
from relay_ops.services.context import Ctx
from relay_ops.services.principal import SYSTEM, Principal

if TYPE_CHECKING:
    from firmware_bridge.identity import LockerIdentity

PASSWORD = "correct horse battery"
HOURS = {d: [["08:00", "20:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat")}


class Api:
    def __init__(self, client: FlaskClient, token: str | None) -> None:
        self.client, self.token = client, token

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return headers | (extra or {})

    def get(self, path: str, **query: Any) -> TestResponse:
        return self.client.get("/api/v1" + path, query_string=query, headers=self._headers(None))

    def post(self, path: str, json: Any = None, headers: dict[str, str] | None = None
             ) -> TestResponse:
        return self.client.post("/api/v1" + path, json=json, headers=self._headers(headers))

    def put(self, path: str, json: Any = None) -> TestResponse:
        return self.client.put("/api/v1" + path, json=json, headers=self._headers(None))

    def delete(self, path: str) -> TestResponse:
        return self.client.delete("/api/v1" + path, headers=self._headers(None))


def shop(code: str, lat: float, lon: float, locations: list[tuple[str, str, int]],
         **extra: Any) -> dict[str, Any]:
    return {
        "code": code, "name": f"Shop {code}", "kind": "shop", "address": "1 rue de la Poste",
        "postcode": "44000", "city": "Bourg", "latitude": lat, "longitude": lon,
        "opening_hours": HOURS,
        "locations": [{"label": lbl, "size_class": c, "capacity": n} for lbl, c, n in locations],
        **extra,
    }


@dataclass
class World:
    ctx: Ctx
    client: FlaskClient
    shop_id: int
    other_shop_id: int
    operator: Api
    shopkeeper: Api
    other_shopkeeper: Api
    carrier: Api
    other_carrier: Api
    anonymous: Api
    recipients: dict[str, dict[str, str]] = field(default_factory=dict)

    def recipient_for(self, number: str) -> dict[str, str]:
        """A recipient of its own for each parcel (Jeanne Martin first; the same one when a
        number is announced again): parcels for one recipient at one shop share a code, so
        tests share one only when they say so."""
        if number not in self.recipients:
            n = len(self.recipients)
            self.recipients[number] = (
                {"name": "Jeanne Martin", "phone": "+33612345678", "email": "jeanne@example.org"}
                if n == 0 else
                {"name": f"Resident {n}", "phone": f"+3361{n:07d}",
                 "email": f"resident{n}@example.org"}
            )
        return self.recipients[number]

    def sign_in_again(self) -> None:
        """Staff tokens expire (12 h): tests that move the clock by days sign in again."""
        for api, name in ((self.operator, "op"), (self.shopkeeper, "marie"),
                          (self.other_shopkeeper, "paul")):
            api.token = staff_sign_in.log_in(self.ctx, name, PASSWORD).token

    def announce(self, *numbers: str, site: str = "bourg", reference: str | None = None,
                 **item: Any) -> TestResponse:
        body = {
            "reference": reference or f"R-{numbers[0]}-{len(numbers)}",
            "parcels": [
                {"tracking_number": n, "site": site, "recipient": self.recipient_for(n), **item}
                for n in numbers
            ],
        }
        return self.carrier.post("/manifests", json=body)

    def check_in(self, number: str, **body: Any) -> TestResponse:
        return self.shopkeeper.post(f"/sites/{self.shop_id}/check-ins",
                                    json={"tracking_number": number, **body})

    def ready(self, number: str) -> dict[str, Any]:
        """Announce and check in: the parcel as the shopkeeper sees it."""
        assert self.announce(number).status_code == 201
        response = self.check_in(number)
        assert response.status_code == 201, response.json
        return response.json["parcel"]

    def code_of(self, parcel_id: int, holder: str = "recipient") -> str:
        """The live code that hands this parcel over (its own, or one it shares)."""
        with self.ctx.db.read() as session:
            credential = session.scalar(
                select(PickupCredential)
                .join(CredentialParcel, CredentialParcel.credential_id == PickupCredential.id)
                .where(
                    CredentialParcel.parcel_id == parcel_id, PickupCredential.holder == holder,
                    PickupCredential.used_at.is_(None), PickupCredential.revoked_at.is_(None),
                )
            )
            assert credential is not None
            return credentials.code_of(self.ctx, credential)

    def pick_up(self, **body: Any) -> TestResponse:
        return self.shopkeeper.post(f"/sites/{self.shop_id}/pickups", json=body)


def make_world(ctx: Ctx, client: FlaskClient) -> World:
    shop_id = sites.create_site(
        ctx, SYSTEM, shop("bourg", 47.5167, -1.2917, [("A1", "S", 10), ("B1", "L", 5)])
    )["id"]
    other_id = sites.create_site(
        ctx, SYSTEM, shop("voisin", 47.4958, -1.4214, [("A1", "M", 10)])
    )["id"]
    accounts.create_carrier(ctx, SYSTEM, code="acme", name="Acme Parcels")
    accounts.create_carrier(ctx, SYSTEM, code="other", name="Other Express")
    accounts.create_user(ctx, SYSTEM, username="op", password=PASSWORD, role="operator")
    accounts.create_user(ctx, SYSTEM, username="marie", password=PASSWORD, role="shopkeeper",
                         site_codes=["bourg"])
    accounts.create_user(ctx, SYSTEM, username="paul", password=PASSWORD, role="shopkeeper",
                         site_codes=["voisin"])

    def staff(name: str) -> Api:
        return Api(client, staff_sign_in.log_in(ctx, name, PASSWORD).token)

    def carrier(code: str) -> Api:
        return Api(client, accounts.issue_carrier_key(ctx, SYSTEM, code).token)

    return World(
        ctx=ctx, client=client, shop_id=shop_id, other_shop_id=other_id,
        operator=staff("op"), shopkeeper=staff("marie"), other_shopkeeper=staff("paul"),
        carrier=carrier("acme"), other_carrier=carrier("other"), anonymous=Api(client, None),
    )


def row_counts(ctx: Ctx) -> dict[str, int]:
    """How many rows each table holds: a refused request must leave these unchanged."""
    with ctx.db.read() as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
        }


def shelf_counts(ctx: Ctx) -> dict[str, tuple[int, int]]:
    """Each shelf location's counter beside a count of the held parcels on it: the pairs are
    equal when every move on and off a shelf kept its counter (``history.apply``)."""
    with ctx.db.read() as session:
        counted = dict(session.execute(
            select(Parcel.location_id, func.count())
            .where(Parcel.state.in_([s.value for s in HELD_STATES]),
                   Parcel.location_id.is_not(None))
            .group_by(Parcel.location_id)).all())
        return {f"{loc.site_id}/{loc.label}": (loc.held, counted.get(loc.id, 0))
                for loc in session.scalars(select(Location).order_by(Location.id))}


def shelf_counts_agree(ctx: Ctx) -> bool:
    return all(held == counted for held, counted in shelf_counts(ctx).values())


def is_problem(response: TestResponse, status: int, slug: str) -> bool:
    body = response.get_json(silent=True) or {}
    return (
        response.status_code == status
        and response.mimetype == "application/problem+json"
        and body.get("type") == f"/api/v1/problems/{slug}"
        and body.get("status") == status
        and bool(body.get("detail"))
    )


def provisioned(ctx: Ctx, site_id: int) -> LockerIdentity:
    """Provision a registered locker as an operator would, and read its bundle as the locker
    would: the identity a test agent is started with."""
    from firmware_bridge.identity import LockerIdentity
    from relay_ops.services import locker_identity

    return LockerIdentity.from_bundle(locker_identity.provision(ctx, SYSTEM, site_id))


def announce_together(
    ctx: Ctx, principals: list[Principal], bodies: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each manifest announced by its carrier in a thread of its own, all released at once
    (race tests); their answers, in the order they finished. Any error fails the test."""
    barrier = threading.Barrier(len(bodies))
    answers: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def announce(principal: Principal, body: dict[str, Any]) -> None:
        barrier.wait()
        try:
            answers.append(manifests.announce(ctx, principal, body)[1])
        except BaseException as err:  # reported below, in the test's thread
            errors.append(err)

    threads = [threading.Thread(target=announce, args=pair)
               for pair in zip(principals, bodies, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and len(answers) == len(bodies)
    return answers
