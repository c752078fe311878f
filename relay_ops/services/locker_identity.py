"""Locker identities: provisioning, revocation, signed commands and trusted event keys.

A door opens only on the backend's word, whatever the broker does (docs/locker-protocol.md
section 12): every command and ack is signed with the backend's command key and carries a
per-locker counter; every message a locker sends is signed with the locker's own key, made
at provisioning and never stored here (only its public half). Provisioning also makes the
locker's broker login, whose hash goes to the broker's password file.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from firmware_bridge import identity as bundle_format
from firmware_bridge import protocol as p
from relay_ops.db.models import LockerLink, Site
from relay_ops.domain.errors import NotFound
from relay_ops.services import locker_commands, locker_compartments, locker_keys
from relay_ops.services.context import Ctx
from relay_ops.services.locker_registry import OPERATOR_ROLES
from relay_ops.services.principal import Principal, require_role

# A locker's broker password is 32 random bytes: the hash's cost adds nothing against
# guessing, and a fleet reconnecting at once pays it per connection.
BROKER_HASH_ITERATIONS = 1000
FORGED = "forged_message"


def provision(
    ctx: Ctx, actor: Principal, site_id: int, *, broker_url: str | None = None,
    ca_cert: str | None = None,
) -> dict[str, Any]:
    """A new identity for the locker: its bundle (to install on the locker, shown once). The
    previous identity, if any, stops working at once: its event key and broker login are
    replaced."""
    require_role(actor, *OPERATOR_ROLES)
    event_key = bundle_format.new_event_key()
    password = secrets.token_urlsafe(32)
    with ctx.db.transaction() as session:
        site = _locker(session, site_id)
        link = locker_compartments.link_of(session, site, lock=True)
        link.identity_generation += 1
        link.event_key = p.raw_public_key(event_key)
        link.provisioned_at, link.revoked_at = ctx.now(), None
        link.broker_username = broker_username(site.code)
        link.broker_password_hash = mosquitto_password_hash(password)
        code, generation = site.code, link.identity_generation
    settings = ctx.settings.locker
    return {
        "format": bundle_format.BUNDLE_FORMAT,
        "locker_id": code,
        "generation": generation,
        "broker": {
            "url": broker_url or settings.broker_url,
            "client_id": f"relayops-locker-{code}",
            "username": broker_username(code),
            "password": password,
            "ca_cert": ca_cert,
        },
        "command_keys": locker_keys.command_keys(ctx),
        "event_key": {"kid": code, "private": bundle_format.private_key_text(event_key)},
        "pin_key": {"key_id": locker_keys.PIN_KEY_ID, "key": locker_keys.pin_key(ctx, code)},
    }


def revoke(ctx: Ctx, actor: Principal, site_id: int) -> dict[str, Any]:
    """The locker's identity stops working: its events are refused from now on and its
    broker login leaves the password file (effective when the broker reloads it)."""
    require_role(actor, *OPERATOR_ROLES)
    with ctx.db.transaction() as session:
        site = _locker(session, site_id)
        link = locker_compartments.link_of(session, site, lock=True)
        link.revoked_at = link.revoked_at or ctx.now()
        link.event_key = link.broker_password_hash = None
        return {"locker": site.code, "revoked_at": link.revoked_at.isoformat()}


def _locker(session: Session, site_id: int) -> Site:
    site = session.get(Site, site_id)
    if site is None or site.kind != "locker":
        raise NotFound(f"no locker {site_id}")
    return site


def broker_username(code: str) -> str:
    """The broker login is the locker id, so one ACL pattern (`%u`) confines every locker to
    its own topics."""
    return code


def mosquitto_password_hash(password: str) -> str:
    """Mosquitto 2's `$7$` form: PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte hash."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, BROKER_HASH_ITERATIONS, 64)
    encoded = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"$7${BROKER_HASH_ITERATIONS}${encoded[0]}${encoded[1]}"


def password_file(ctx: Ctx, extra: Iterable[tuple[str, str]] = ()) -> str:
    """The broker's password file: every provisioned, unrevoked locker, then ``extra``
    (username, password) pairs such as the bridge's."""
    with ctx.db.read() as session:
        rows = session.execute(
            select(LockerLink.broker_username, LockerLink.broker_password_hash)
            .where(LockerLink.broker_password_hash.is_not(None),
                   LockerLink.revoked_at.is_(None))
            .order_by(LockerLink.broker_username)
        ).all()
    lines = [f"{user}:{hashed}" for user, hashed in rows]
    lines += [f"{user}:{mosquitto_password_hash(password)}" for user, password in extra]
    return "".join(line + "\n" for line in lines)


# ---------------------------------------------------------------- commands out


def take_counters(ctx: Ctx, code: str, count: int) -> int:
    """Reserve ``count`` consecutive command counters for locker ``code``; returns the first.
    One statement: bridges publishing for the same locker never share a counter.

    Not durable (no WAL flush before the command goes out: a QR pickup waits for it): if the
    database server crashes and forgets the last counters, the next commands reuse numbers
    the locker has passed, it answers `stale_counter` and they go out again under new ones.
    The locker's own journal, not this row, is what refuses a replayed command."""
    with ctx.db.transaction(durable=False) as session:
        first = locker_commands.reserve_counters(session, code, count)
    if first is None:
        raise NotFound(f"no locker {code!r}")
    return first


def sign(ctx: Ctx, envelope: p.Envelope) -> bytes:
    settings = ctx.settings.locker
    return p.sign(envelope, settings.command_key, settings.command_kid)


# ---------------------------------------------------------------- messages in


def event_keys(ctx: Ctx, codes: Iterable[str]) -> dict[str, Ed25519PublicKey]:
    """The keys the named lockers sign with; a locker never provisioned, or revoked, has
    none (its messages are refused). Read per batch, so a revocation holds at once."""
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    with ctx.db.read() as session:
        rows = session.execute(
            select(Site.code, LockerLink.event_key)
            .join(LockerLink, LockerLink.site_id == Site.id)
            .where(Site.code.in_(wanted), LockerLink.event_key.is_not(None),
                   LockerLink.revoked_at.is_(None))
        ).all()
    return {code: p.load_raw_public_key(key) for code, key in rows if key is not None}


def refused_message(ctx: Ctx, code: str, reason: str, message_type: str) -> bool:
    """A message on a locker's topics that its key did not sign: counted on one open
    `forged_message` alert per locker (a burst is one alert). False for an unknown locker."""
    from relay_ops.services.locker_alerts import alert_on

    with ctx.db.transaction() as session:
        site = session.scalar(select(Site).where(Site.code == code, Site.kind == "locker"))
        if site is None:
            return False
        alert_on(session, site, FORGED, f"last refused: a {message_type} ({reason})")
        return True

