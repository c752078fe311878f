"""Layered configuration: built-in defaults, then a TOML file, then ``RELAY_OPS_*`` variables,
then the mapping a test passes to ``create_app``.

The defaults run the embedded demo; production sets the secrets, the database URL and Redis.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from flask import Flask

DEV_SECRET = "dev-only-not-secret"  # noqa: S105 - refused when RELAY_OPS_ENV=production

DEFAULTS: dict[str, Any] = {
    "ENV": "development",
    "SECRET_KEY": DEV_SECRET,
    # None: an SQLite file in the instance folder (the embedded default).
    "DATABASE_URL": None,
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "TIMEZONE": "Europe/Paris",
    "PUBLIC_BASE_URL": "http://127.0.0.1:5000",
    "PICKUP_CODE_DIGITS": 7,
    # Wrong code-only guesses each live code may meet before the counter must also give the
    # tracking number or the recipient's name (docs/decisions/0004): 10**(digits - 6) keeps
    # 1e-6 per parcel; 7 digits keep the 5 tries of a guesser who knows the parcel under it.
    "PICKUP_CODE_ONLY_MISSES": 10,
    "PICKUP_CODE_PEPPER": DEV_SECRET + "-pepper",
    "PICKUP_CODE_DERIVATION_KEY": DEV_SECRET + "-derive",
    "API_TOKEN_PEPPER": DEV_SECRET + "-tokens",
    "STAFF_TOKEN_TTL_HOURS": 12,
    # argon2id cost for staff passwords (RFC 9106's second recommended profile: 64 MiB, t=3).
    "ARGON2_TIME_COST": 3,
    "ARGON2_MEMORY_KIB": 65536,
    "HOLDING_PERIODS": {
        "shop": {"days": 10, "extension_days": 5, "reminder_before_hours": 48},
        "locker": {"days": 3, "extension_days": 1, "reminder_before_hours": 12},
        # Overflow storage (docs/overflow.md); a configuration without it uses the shop's.
        "storage": {"days": 10, "extension_days": 5, "reminder_before_hours": 48},
    },
    # Inner dimensions in mm; per-site models may add their own.
    "SIZE_CLASSES": {
        "S": [80, 380, 640],
        "M": [190, 380, 640],
        "L": [410, 380, 640],
        "XL": [500, 500, 800],
    },
    # Occupancy forecast and reroutes before the van leaves (docs/forecast.md).
    "FORECAST": {
        "horizon_days": 7,
        "band_z": 1.645,
        "dwell_window_days": 56,
        "arrival_window_days": 28,
        # Check-ins per open day: a weighted line (level and trend) whose weights halve
        # every arrival_half_life_days back; each further day ahead adds trend_damping of
        # the previous day's trend step; the line's sampling variances are multiplied by
        # rate_uncertainty_factor, calibrated on the territory replay (docs/forecast.md).
        "arrival_half_life_days": 14,
        "arrival_trend": True,
        "trend_damping": 0.7,
        "rate_uncertainty_factor": 3.0,
        # How far the rate may turn from that line by day i ahead: rate_drift * i**2 of
        # itself (one standard deviation), counted on the days a higher rate would fill the
        # site, whose vans keep every parcel; rate_drift_with_trend once the line has a
        # trend (from MIN_DAYS_FOR_TREND open days on), whose own error is then counted.
        # Calibrated on the territory replay at load 1.5 on 1-5 and on 12-22 days of
        # history (docs/forecast.md, "When the rate turns"). 0 counts the line's error only.
        # rate_drift_with_season in place of rate_drift when the coming days have a declared
        # season (demand-index): its factors carry the ramp a flat line cannot see.
        "rate_drift": 0.025,
        "rate_drift_with_trend": 0.003,
        "rate_drift_with_season": 0.0025,
        "prior_weight": 20,
        "show_rate": 0.97,
        "return_lag_days": 2,
        # How far a parcel may be sent instead, by the original site's area.
        "reroute_radius_km": {"town": 2.0, "countryside": 10.0},
        "reroute_options": 3,
        # Candidates ranked by load + reroute_distance_weight * distance / reach.
        "reroute_distance_weight": 0.5,
        # A place held for a rerouted parcel lapses this many days after its day.
        "reservation_grace_days": 1,
    },
    # Shorter holding periods in a season, per site kind, e.g.
    # {"shop": [{"from": "11-20", "to": "12-24", "days": 5}]}; none by default.
    "HOLDING_SEASONS": {},
    # Shorter holding periods when the site's forecast for the day reaches this share of its
    # capacity, or (look_ahead) shows a day at risk of overflow within the standard period;
    # those parcels get their reminder reminder_before_hours before the deadline (earlier than
    # HOLDING_PERIODS says). {} or days {} turns it off (docs/forecast.md, "Adaptive holding").
    "HOLDING_LOAD": {"threshold": 0.9, "days": {"shop": 6, "locker": 2}, "look_ahead": True,
                     "reminder_before_hours": {"shop": 96, "locker": 24}},
    # No season or load rule holds a parcel for fewer days than this, per site kind: the
    # resident keeps a fair chance (Mondial Relay holds 5 days, Packeta 4-5 in December).
    "HOLDING_FLOOR_DAYS": {"shop": 4, "locker": 2},
    # Reverse proxies in front of the app that set X-Forwarded-For (nginx: 1). Sign-in
    # throttling keys on the client's address; 0 trusts no header (a client could forge it).
    "TRUSTED_PROXIES": 0,
    "DEFAULT_PAGE_SIZE": 50,
    "MAX_PAGE_SIZE": 500,
    # Largest request body, in bytes (413 past it; relay_ops/web/inputs.py): a small default,
    # and one for manifests and carriers' collections (a manifest holds up to 5,000 parcels).
    "MAX_BODY_BYTES": 64 * 1024,
    "MAX_MANIFEST_BYTES": 4 * 1024 * 1024,
    # Notification channels (see relay_ops/notifications/senders.py for SMTP and SMS keys).
    # The embedded default writes messages to a file in the instance folder.
    "NOTIFY_EMAIL_BACKEND": "file",
    "NOTIFY_SMS_BACKEND": "file",
    "NOTIFY_FILE_PATH": None,
    # Run queued jobs in a thread of the web process (embedded default) instead of RQ.
    "JOBS_IN_PROCESS": True,
    # Locker models: compartments numbered in order; dims default to the class's SIZE_CLASSES.
    "LOCKER_MODELS": {
        "standard-16": {"compartments": [
            {"size_class": "S", "count": 6}, {"size_class": "M", "count": 6},
            {"size_class": "L", "count": 3}, {"size_class": "XL", "count": 1},
        ]},
        "mini-6": {"compartments": [
            {"size_class": "S", "count": 2}, {"size_class": "M", "count": 2},
            {"size_class": "L", "count": 1}, {"size_class": "XL", "count": 1},
        ]},
    },
    # Ed25519 key signing residents' QR tokens (PKCS#8 PEM or base64 seed). None: a development
    # key derived from SECRET_KEY, the same in every process (refused in production).
    "LOCKER_TOKEN_SIGNING_KEY": None,
    "LOCKER_TOKEN_KID": "k1",
    # Ed25519 key signing every command and ack sent to lockers (protocol section 12); same
    # forms and development default as the token key. Lockers trust the public halves their
    # bundle names: this key's, and LOCKER_COMMAND_TRUSTED_KEYS ({kid: base64 raw public key},
    # the next key during a rotation).
    "LOCKER_COMMAND_SIGNING_KEY": None,
    "LOCKER_COMMAND_KID": "c1",
    "LOCKER_COMMAND_TRUSTED_KEYS": {},
    # What a provisioning bundle tells a locker about the broker (protocol section 12). The
    # bridge reads the MQTT_* settings below.
    "LOCKER_BROKER_URL": "mqtt://127.0.0.1:1883",
    "LOCKER_BROKER_CA_FILE": None,
    # Derives each locker's PIN hashing key (the keyed hashes synced to lockers).
    "LOCKER_PIN_KEY_SECRET": DEV_SECRET + "-locker-pins",
    "LOCKER_OPEN_TTL_S": 60,  # a resident stands at the door: a later opening is useless
    "LOCKER_SESSION_TIMEOUT_S": 600,  # a drop-off session idle this long releases its doors
    "LOCKER_SYNC_TTL_S": 6 * 3600,
    # A locker offline at least this long gives its parcels the outage back (protocol 9.6);
    # 0 turns it off.
    "LOCKER_OUTAGE_CREDIT_MIN_S": 3600,
    # Parcels announced to a locker with an expected date at most this many days ahead get a
    # compartment reserved in advance (synced to the locker: the carrier can deposit offline);
    # -1 turns advance reservations off.
    "LOCKER_ADVANCE_RESERVATION_DAYS": 1,
    # MQTT link to lockers (the bridge).
    "MQTT_HOST": "127.0.0.1",
    "MQTT_PORT": 1883,
    # The bridge's broker login and TLS (config/mosquitto/production.conf). In production a
    # plain-TCP broker off the loopback is refused unless MQTT_ALLOW_PLAINTEXT_BROKER is set.
    "MQTT_TLS": False,
    "MQTT_TLS_CA_FILE": None,
    "MQTT_USERNAME": None,
    "MQTT_PASSWORD": None,
    "MQTT_ALLOW_PLAINTEXT_BROKER": False,
    # False for brokers without $share (the embedded amqtt broker): run one bridge only.
    "MQTT_SHARED_SUBSCRIPTION": True,
    "MQTT_SHARE_GROUP": "bridges",
    "MQTT_CLIENT_ID_PREFIX": "relayops-bridge",
    # The demo runs an in-process MQTT broker (amqtt) on this port (0: a free port).
    "DEMO_MQTT_PORT": 0,
    # RQ (JOBS_IN_PROCESS=False): queue names, RQ job ids and lock keys start with this prefix,
    # so several deployments (or test runs) can share one Redis.
    "JOBS_PREFIX": "relayops",
    # Seconds between retries of a job that failed for a transient reason (one entry a retry).
    "JOB_RETRY_INTERVALS": [10, 60, 300, 900, 3600],
    "JOB_TIMEOUT_S": 120,
    # Seconds between runs of each periodic sweep (relay_ops/jobs.py SWEEPS); 0 turns one off.
    "SWEEP_INTERVALS": {
        "expiry": 60,
        "reminders": 300,
        "outbox-redispatch": 60,
        "personal-data-purge": 3600,
        "forecast": 3600,
        "locker-reservations": 60,
        "outbound-overdue": 600,
        "locker-take-back": 600,
        "home-delivery-end-of-day": 600,
        "place-reservations": 600,
    },
    # An outbox row handed to RQ and not done after this long is checked against Redis and
    # handed over again if Redis lost it.
    "OUTBOX_STALE_AFTER_S": 300,
    # Recipient name, phone and e-mail are erased this many days after pickup or return.
    "PERSONAL_DATA_RETENTION_DAYS": 30,
    # "text" (logging's usual lines) or "json" (one object a line, for a log pipeline); each
    # line written in a request names its id (relay_ops/logs.py).
    "LOG_FORMAT": "text",
    # Prometheus metrics (relay_ops/metrics.py): /metrics answers a scraper sending
    # "Authorization: Bearer <METRICS_TOKEN>"; None: metrics are off (404).
    "METRICS_TOKEN": None,
}

SECRET_KEYS = (
    "SECRET_KEY", "PICKUP_CODE_PEPPER", "PICKUP_CODE_DERIVATION_KEY", "API_TOKEN_PEPPER",
    "LOCKER_PIN_KEY_SECRET",
)


def load(app: Flask, test_config: dict[str, Any] | None) -> None:
    app.config.from_mapping(DEFAULTS)
    config_file = os.environ.get("RELAY_OPS_CONFIG_FILE")
    if config_file:
        app.config.from_file(str(Path(config_file).resolve()), load=tomllib.load, text=False)
    app.config.from_prefixed_env("RELAY_OPS")
    if test_config:
        app.config.from_mapping(test_config)
    if app.config["DATABASE_URL"] is None:
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        app.config["DATABASE_URL"] = f"sqlite:///{Path(app.instance_path) / 'relay_ops.sqlite3'}"
    if app.config["NOTIFY_FILE_PATH"] is None:
        app.config["NOTIFY_FILE_PATH"] = str(Path(app.instance_path) / "notifications.jsonl")
    _refuse_dev_secrets_in_production(app)


def _refuse_dev_secrets_in_production(app: Flask) -> None:
    if app.config["ENV"] != "production":
        return
    weak = [k for k in SECRET_KEYS if str(app.config[k]).startswith(DEV_SECRET)]
    weak += [k for k in ("LOCKER_TOKEN_SIGNING_KEY", "LOCKER_COMMAND_SIGNING_KEY")
             if app.config[k] is None]
    if weak:
        raise RuntimeError(f"set real secrets in production: {', '.join(weak)}")
