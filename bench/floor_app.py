"""The physical floor of the fast path (issue 15): a bare Flask app that runs, per request,
the very statements RelayOps runs for a check-in and for a pickup by code, and nothing else.

    gunicorn 'bench.floor_app:create_app()'    # RELAY_OPS_DATABASE_URL and its peppers set

``bench/bare_app.py`` measures a framework with one ``INSERT``; this measures the same round
trips as the product (the SQL text below is what ``tests/integration/test_fast_path_statements``
counts, as SQLAlchemy renders it for PostgreSQL, copied at git ``1f672c7``), on psycopg's
cursor with the driver's own prepared statements, one connection per thread, and the least
Python around them that still does the work: the bearer token checked against its hash, the
recipient's key and the new code hashed as the product does (``relay_ops.domain.credentials``,
pure functions), a shelf with room chosen, the answer built from the rows. No validation
layer, no calendar, no holding rules, no ORM, no problem bodies: what RelayOps spends above
this floor is what its layers cost, and what is left to cut; what this floor costs is what
cannot be cut without writing less.

It serves the benchmark's databases only (``bench/fast_path.py`` seeds them): no error
handling beyond answering 4xx when a parcel or a code is not there.
"""

from __future__ import annotations

import hmac
import os
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from flask import Flask, request
from psycopg.types.json import Json

from relay_ops.domain import credentials as creds

TOKEN = """SELECT api_tokens.secret_hash, api_tokens.revoked_at, api_tokens.expires_at,
api_tokens.carrier_id, api_tokens.producer_id, users.id, users.active, users.role,
users.display_name, user_sites.site_id
FROM api_tokens LEFT OUTER JOIN users ON api_tokens.user_id = users.id
LEFT OUTER JOIN user_sites ON user_sites.user_id = users.id
WHERE api_tokens.prefix = %(prefix)s::VARCHAR"""

SHOP = """SELECT sites.id, sites.code, sites.name, sites.kind, sites.network, sites.address,
sites.postcode, sites.city, sites.latitude, sites.longitude, sites.area, sites.opening_hours,
sites.step_free_access, sites.status, sites.locker_model, sites.services, sites.season_from,
sites.season_to, sites.created_at,
(SELECT site_forecasts.predicted / CAST(CAST(site_forecasts.capacity AS FLOAT) AS FLOAT)
 FROM site_forecasts WHERE site_forecasts.site_id = sites.id
 AND site_forecasts.day = %(today)s::DATE AND site_forecasts.capacity != 0) AS ratio,
(SELECT min(site_forecasts.day) FROM site_forecasts WHERE site_forecasts.site_id = sites.id
 AND site_forecasts.day >= %(today)s::DATE AND site_forecasts.day <= %(until)s::DATE
 AND site_forecasts.at_risk IS true) AS risk,
(SELECT count(*) FROM place_reservations JOIN parcels ON parcels.id = place_reservations.parcel_id
 WHERE place_reservations.site_id = sites.id AND parcels.site_id = sites.id
 AND place_reservations.status = 'held' AND parcels.state = 'announced'
 AND place_reservations.day >= %(reserved_since)s::DATE
 AND place_reservations.day <= %(today)s::DATE) AS reserved,
closing_days.day
FROM sites LEFT OUTER JOIN closing_days ON closing_days.site_id = sites.id
AND closing_days.day >= %(yesterday)s::DATE
WHERE sites.id = %(site_id)s::INTEGER FOR UPDATE OF sites"""

SHELVES = """SELECT locations.id, locations.site_id, locations.label, locations.size_class,
locations.capacity, locations.active, locations.held, locations.refrigerated,
locations.valid_from, locations.valid_until
FROM locations WHERE locations.site_id = %(site_id)s::INTEGER ORDER BY locations.label"""

_PARCEL_COLUMNS = """parcels.id, parcels.tracking_number, parcels.carrier_id,
parcels.manifest_id, parcels.site_id, parcels.location_id, parcels.compartment_id,
parcels.state, parcels.direction, parcels.unannounced, parcels.recipient_name,
parcels.recipient_phone, parcels.recipient_email, parcels.recipient_locale,
parcels.recipient_phone_key, parcels.recipient_email_key, parcels.size_class,
parcels.height_mm, parcels.width_mm, parcels.depth_mm, parcels.weight_g, parcels.expected_date,
parcels.holding_deadline, parcels.holding_rule, parcels.reminder_before_hours,
parcels.extended, parcels.checked_in_at, parcels.closed_at, parcels.personal_data_purged_at,
parcels.first_attempt_at, parcels.first_attempt_site_id, parcels.first_check_in_at,
parcels.announced_at, parcels.ended_at, parcels.ending, parcels.created_at,
parcels.updated_at"""
# where the floor reads a parcel row's fields (the columns' order above)
P_ID, P_NUMBER, P_SITE, P_STATE, P_NAME, P_PHONE, P_FIRST_ATTEMPT = 0, 1, 4, 7, 10, 11, 29
P_COLUMNS = 37

PARCEL = f"""SELECT {_PARCEL_COLUMNS},
EXISTS (SELECT unannounced_scans.site_id FROM unannounced_scans
 WHERE unannounced_scans.site_id = %(site_id)s::INTEGER
 AND unannounced_scans.tracking_number = %(number)s::VARCHAR) AS scanned,
(SELECT place_reservations.day FROM place_reservations
 WHERE place_reservations.parcel_id = parcels.id
 AND place_reservations.site_id = %(site_id)s::INTEGER AND place_reservations.status = 'held'
 ORDER BY place_reservations.id DESC LIMIT 1) AS reserved_day,
carriers.id AS id_1, carriers.code, carriers.name, carriers.reroute_policy,
carriers.created_at AS created_at_1, carriers.label_networks, producer_orders.parcel_id,
producer_orders.producer_id, producer_orders.reference, producer_orders.keep_cold,
producer_orders.holding_hours, producer_orders.sell_by, producer_orders.announced_at AS a_1,
producer_orders.fingerprint
FROM parcels LEFT OUTER JOIN carriers ON carriers.id = parcels.carrier_id
LEFT OUTER JOIN producer_orders ON producer_orders.parcel_id = parcels.id
WHERE parcels.tracking_number = %(number)s::VARCHAR ORDER BY parcels.id FOR UPDATE OF parcels"""

GROUP = """SELECT parcels.id, parcels.location_id, parcels.tracking_number,
parcels.recipient_phone_key, parcels.recipient_email_key, pickup_credentials.id AS id_1,
pickup_credentials.locked_at
FROM parcels JOIN credential_parcels ON credential_parcels.parcel_id = parcels.id
JOIN pickup_credentials ON pickup_credentials.id = credential_parcels.credential_id
WHERE parcels.site_id = %(site_id)s::INTEGER AND parcels.state = 'ready_for_pickup'
AND parcels.id != %(parcel_id)s::INTEGER AND pickup_credentials.holder = 'recipient'
AND pickup_credentials.used_at IS NULL AND pickup_credentials.revoked_at IS NULL
AND (parcels.recipient_phone_key = %(phone_key)s::VARCHAR)"""

# The transition write: the parcel, its event and its shelf's counter in one statement.
_EVENT_AND_COUNTER = """event AS
(INSERT INTO parcel_events (parcel_id, at, action, from_state, to_state, actor_kind, actor_id,
 site_id, reason, data)
 SELECT moved.id, %(at)s::TIMESTAMPTZ, %(action)s::VARCHAR, %(from_state)s::VARCHAR,
 %(to_state)s::VARCHAR, %(actor_kind)s::VARCHAR, %(actor_id)s::VARCHAR, %(site)s::INTEGER,
 NULL::VARCHAR, %(data)s::JSON FROM moved RETURNING parcel_events.id, parcel_events.parcel_id),
counted AS
(UPDATE locations SET held = (locations.held + %(change)s::INTEGER) FROM moved, event
 WHERE locations.id = moved.location_id AND event.parcel_id = moved.id RETURNING locations.id)
SELECT moved.updated_at, (SELECT event.id FROM event) AS event FROM moved"""

CHECK_IN_WRITE = f"""WITH site AS
(SELECT sites.id AS id, %(parcel)s::INTEGER AS parcel_id FROM sites
 WHERE sites.id = %(site)s::INTEGER FOR KEY SHARE),
moved AS
(UPDATE parcels SET location_id = %(location_id)s::INTEGER, state = %(to_state)s::VARCHAR,
 recipient_phone_key = %(phone_key)s::VARCHAR, recipient_email_key = NULL::VARCHAR,
 holding_deadline = %(deadline)s::TIMESTAMPTZ, holding_rule = 'standard',
 reminder_before_hours = NULL::INTEGER, checked_in_at = %(at)s::TIMESTAMPTZ,
 first_attempt_at = %(first_attempt_at)s::TIMESTAMPTZ,
 first_attempt_site_id = %(first_attempt_site_id)s::INTEGER,
 first_check_in_at = %(at)s::TIMESTAMPTZ, updated_at = %(at)s::TIMESTAMPTZ
 FROM site WHERE parcels.id = site.parcel_id
 RETURNING parcels.id, parcels.location_id, parcels.updated_at),
{_EVENT_AND_COUNTER}"""

PICKUP_WRITE = f"""WITH site AS
(SELECT sites.id AS id, %(parcel)s::INTEGER AS parcel_id FROM sites
 WHERE sites.id = %(site)s::INTEGER FOR KEY SHARE),
moved AS
(UPDATE parcels SET state = %(to_state)s::VARCHAR, closed_at = %(at)s::TIMESTAMPTZ,
 ended_at = %(at)s::TIMESTAMPTZ, ending = 'pick_up', updated_at = %(at)s::TIMESTAMPTZ
 FROM site WHERE parcels.id = site.parcel_id
 RETURNING parcels.id, parcels.location_id, parcels.updated_at),
{_EVENT_AND_COUNTER}"""

_CREDENTIAL_COLUMNS = """id, parcel_id, site_id, holder, holder_name, nonce, code_hash,
failed_attempts, token_jti, locked_at, used_at, revoked_at, created_at"""

NEW_CODE = f"""WITH issued AS
(INSERT INTO pickup_credentials (parcel_id, site_id, holder, holder_name, nonce, code_hash,
 failed_attempts, created_at)
 SELECT %(parcel_id)s::INTEGER, %(site_id)s::INTEGER, 'recipient', NULL::VARCHAR,
 %(nonce)s::VARCHAR, %(code_hash)s::VARCHAR, 0, %(at)s::TIMESTAMPTZ
 WHERE NOT (EXISTS (SELECT pickup_credentials.id FROM pickup_credentials
  WHERE pickup_credentials.site_id = %(site_id)s::INTEGER
  AND pickup_credentials.code_hash = %(code_hash)s::VARCHAR
  AND pickup_credentials.used_at IS NULL AND pickup_credentials.revoked_at IS NULL))
 RETURNING {_CREDENTIAL_COLUMNS}),
linked AS
(INSERT INTO credential_parcels (credential_id, parcel_id, added_at)
 SELECT issued.id, issued.parcel_id, issued.created_at FROM issued)
SELECT {_CREDENTIAL_COLUMNS} FROM issued"""

NOTIFY = """WITH owed AS
(INSERT INTO notifications (parcel_id, kind, channel, dedupe_key, status, attempts, created_at)
 SELECT rows.parcel_id, rows.kind, rows.channel, rows.key, 'queued', 0, %(at)s::TIMESTAMPTZ
 FROM (SELECT %(parcel_id)s::INTEGER AS parcel_id, %(kind)s::VARCHAR AS kind,
  'email'::VARCHAR AS channel, %(key_0)s::VARCHAR AS key
  UNION ALL SELECT %(parcel_id)s::INTEGER, %(kind)s::VARCHAR, 'sms'::VARCHAR,
  %(key_1)s::VARCHAR) AS rows
 WHERE true ON CONFLICT (dedupe_key) DO NOTHING
 RETURNING notifications.id, notifications.created_at)
INSERT INTO outbox (kind, name, payload, dedupe_key, status, attempts, created_at, available_at)
SELECT 'job', 'notifications.send',
 CAST(json_build_object('notification_id', owed.id) AS JSON),
 'notify:' || CAST(owed.id AS VARCHAR), 'pending', 0, owed.created_at, owed.created_at
FROM owed RETURNING outbox.id"""

SITE_GUESS_LOCK = """SELECT sites.id, sites.code, sites.name, sites.kind, sites.network,
sites.address, sites.postcode, sites.city, sites.latitude, sites.longitude, sites.area,
sites.opening_hours, sites.step_free_access, sites.status, sites.locker_model, sites.services,
sites.season_from, sites.season_to, sites.created_at,
pg_advisory_xact_lock(4004, sites.id) AS guess_lock
FROM sites WHERE sites.id = %(site_id)s::INTEGER"""

CODE_ONLY_MISSES = """SELECT count(*) FROM failed_attempts
WHERE failed_attempts.scope = 'pickup-code' AND failed_attempts.key = %(key)s::VARCHAR
AND failed_attempts.at >= (SELECT min(pickup_credentials.created_at) FROM pickup_credentials
 WHERE pickup_credentials.site_id = %(site_id)s::INTEGER
 AND pickup_credentials.used_at IS NULL AND pickup_credentials.revoked_at IS NULL)"""

CODE = """SELECT pickup_credentials.id FROM pickup_credentials
WHERE pickup_credentials.site_id = %(site_id)s::INTEGER
AND pickup_credentials.code_hash = %(code_hash)s::VARCHAR
AND pickup_credentials.used_at IS NULL AND pickup_credentials.revoked_at IS NULL FOR UPDATE"""

CODE_PARCELS = f"""SELECT {_PARCEL_COLUMNS},
carriers.id AS id_1, carriers.code, carriers.name, carriers.reroute_policy,
carriers.created_at AS created_at_1, carriers.label_networks,
locations.id AS id_2, locations.site_id AS site_id_1, locations.label,
locations.size_class AS size_class_1, locations.capacity, locations.active, locations.held,
locations.refrigerated, locations.valid_from, locations.valid_until,
pickup_credentials.id AS id_3, pickup_credentials.parcel_id, pickup_credentials.site_id AS s_2,
pickup_credentials.holder, pickup_credentials.holder_name, pickup_credentials.nonce,
pickup_credentials.code_hash, pickup_credentials.failed_attempts, pickup_credentials.token_jti,
pickup_credentials.locked_at, pickup_credentials.used_at, pickup_credentials.revoked_at,
pickup_credentials.created_at AS created_at_2
FROM parcels LEFT OUTER JOIN carriers ON carriers.id = parcels.carrier_id
LEFT OUTER JOIN locations ON locations.id = parcels.location_id
LEFT OUTER JOIN credential_parcels AS credential_parcels_1
 ON credential_parcels_1.parcel_id = parcels.id
 AND credential_parcels_1.parcel_id = ANY(ARRAY(SELECT credential_parcels.parcel_id
  FROM credential_parcels WHERE credential_parcels.credential_id = %(credential_id)s::INTEGER))
LEFT OUTER JOIN pickup_credentials ON pickup_credentials.id = credential_parcels_1.credential_id
WHERE parcels.id = ANY(ARRAY(SELECT credential_parcels.parcel_id FROM credential_parcels
 WHERE credential_parcels.credential_id = %(credential_id)s::INTEGER))
ORDER BY parcels.id, pickup_credentials.id FOR UPDATE OF parcels"""

CODE_SPENT = """UPDATE pickup_credentials SET used_at = %(at)s::TIMESTAMPTZ
WHERE pickup_credentials.id = %(credential_id)s::INTEGER"""


class Refused(Exception):
    """A request the floor answers 4xx."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def create_app() -> Flask:
    url = os.environ["RELAY_OPS_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    token_pepper = os.environ["RELAY_OPS_API_TOKEN_PEPPER"].encode()
    code_pepper = os.environ["RELAY_OPS_PICKUP_CODE_PEPPER"].encode()
    derivation_key = os.environ["RELAY_OPS_PICKUP_CODE_DERIVATION_KEY"].encode()
    digits = int(os.environ.get("RELAY_OPS_PICKUP_CODE_DIGITS", "7"))
    local = threading.local()
    app = Flask(__name__)

    def connection() -> psycopg.Connection[Any]:
        if getattr(local, "conn", None) is None:
            local.conn = psycopg.connect(url, autocommit=True)
            local.conn.execute("SET jit = off")  # as RelayOps' connections run
        return local.conn

    def staff(conn: psycopg.Connection[Any], site_id: int) -> str:
        """The bearer token checked as RelayOps checks it (outside the transaction)."""
        prefix, _, secret = request.headers.get("Authorization", "")[7:].partition(".")
        rows = conn.execute(TOKEN, {"prefix": prefix}).fetchall()
        wanted = hmac.new(token_pepper, secret.encode(), "sha256").hexdigest()
        if not rows or not hmac.compare_digest(rows[0][0], wanted) or rows[0][1] is not None:
            raise Refused(401, "unknown or wrong token")
        if site_id not in {row[9] for row in rows}:
            raise Refused(403, "not your site")
        return f"user:{rows[0][5]}"

    @app.get("/ready")
    def ready() -> tuple[str, int]:
        return "ready", 200

    @app.errorhandler(Refused)
    def refused(error: Refused) -> tuple[dict[str, object], int]:
        return {"detail": str(error)}, error.status

    @app.post("/api/v1/sites/<int:site_id>/check-ins")
    def check_in(site_id: int) -> tuple[dict[str, object], int]:
        number = str(request.get_json()["tracking_number"])
        conn = connection()
        actor = staff(conn, site_id)
        now = datetime.now(UTC)
        today = now.date()
        with conn.transaction():
            shop = conn.execute(SHOP, {
                "site_id": site_id, "today": today, "yesterday": today - timedelta(days=1),
                "until": today + timedelta(days=10), "reserved_since": today}).fetchall()
            shelves = conn.execute(SHELVES, {"site_id": site_id}).fetchall()
            found = conn.execute(PARCEL, {"site_id": site_id, "number": number}).fetchall()
            if not found or found[0][P_SITE] != site_id:
                raise Refused(404, f"{number} is not announced here")
            parcel = found[0]
            phone_key = creds.recipient_key(code_pepper, "phone", parcel[P_PHONE])
            conn.execute(GROUP, {"site_id": site_id, "parcel_id": parcel[P_ID],
                                 "phone_key": phone_key}).fetchall()
            shelf = next(s for s in shelves if s[5] and s[6] < s[4])
            deadline = datetime.combine(today + timedelta(days=10), datetime.max.time(), UTC)
            conn.execute(CHECK_IN_WRITE, {
                "parcel": parcel[P_ID], "site": site_id, "location_id": shelf[0],
                "to_state": "ready_for_pickup", "phone_key": phone_key, "deadline": deadline,
                "at": now, "first_attempt_at": parcel[P_FIRST_ATTEMPT] or now,
                "first_attempt_site_id": site_id, "action": "check_in",
                "from_state": parcel[P_STATE], "actor_kind": "shopkeeper", "actor_id": actor,
                "data": Json({"location": shelf[2], "holding_days": 10}), "change": 1,
            }).fetchall()
            nonce = creds.new_nonce()
            code = creds.derive_code(derivation_key, nonce, digits)
            conn.execute(NEW_CODE, {
                "parcel_id": parcel[P_ID], "site_id": site_id, "nonce": nonce,
                "code_hash": creds.hash_code(code_pepper, site_id, code), "at": now,
            }).fetchall()
            _notify(conn, parcel[P_ID], "ready", now)
        return {"status": "checked_in", "parcel": _view(shop[0], parcel, shelf[2],
                                                        "ready_for_pickup", deadline, now)}, 201

    @app.post("/api/v1/sites/<int:site_id>/pickups")
    def pick_up(site_id: int) -> tuple[dict[str, object], int]:
        code = str(request.get_json()["code"])
        conn = connection()
        actor = staff(conn, site_id)
        now = datetime.now(UTC)
        with conn.transaction():
            shop = conn.execute(SITE_GUESS_LOCK, {"site_id": site_id}).fetchall()
            conn.execute(CODE_ONLY_MISSES, {"key": str(site_id), "site_id": site_id}).fetchall()
            credential = conn.execute(CODE, {"site_id": site_id, "code_hash": creds.hash_code(
                code_pepper, site_id, code)}).fetchall()
            if not credential:
                raise Refused(404, "no such code here")
            rows = conn.execute(CODE_PARCELS, {"credential_id": credential[0][0]}).fetchall()
            parcel = rows[0]
            conn.execute(PICKUP_WRITE, {
                "parcel": parcel[P_ID], "site": site_id, "to_state": "picked_up", "at": now,
                "action": "pick_up", "from_state": parcel[P_STATE], "actor_kind": "shopkeeper",
                "actor_id": actor, "data": Json({"holder": "recipient"}), "change": -1,
            }).fetchall()
            conn.execute(CODE_SPENT, {"at": now, "credential_id": credential[0][0]})
            _notify(conn, parcel[P_ID], "picked_up", now)
        view = _view(shop[0], parcel, rows[0][P_COLUMNS + 8], "picked_up", parcel[22], now)
        return {"status": "picked_up", "parcel": view, "parcels": [view],
                "not_handed_over": []}, 200

    return app


def _notify(conn: psycopg.Connection[Any], parcel_id: int, kind: str, now: datetime) -> None:
    conn.execute(NOTIFY, {"parcel_id": parcel_id, "kind": kind, "at": now,
                          "key_0": f"{parcel_id}:{kind}::email",
                          "key_1": f"{parcel_id}:{kind}::sms"}).fetchall()


def _view(site: Any, parcel: Any, label: str, state: str, deadline: datetime | None,
          now: datetime) -> dict[str, object]:
    """The parcel as RelayOps' answer shows it to staff (the same keys)."""
    return {"id": parcel[P_ID], "tracking_number": parcel[P_NUMBER], "state": state,
            "direction": "inbound", "unannounced": False, "carrier": "bench",
            "site": site[1], "location": label, "compartment": None, "size_class": None,
            "expected_date": _iso(parcel[21]), "holding_deadline": _iso(deadline),
            "holding_rule": "standard", "extended": False, "checked_in_at": now.isoformat(),
            "closed_at": now.isoformat() if state == "picked_up" else None, "group": None,
            "recipient": {"name": parcel[P_NAME]}}


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
