"""Pickup codes: drawn unique among a site's live codes, shown again from their nonce, found,
released when a parcel leaves the shelf; a proxy's own code; the recipient keys that let
parcels for one recipient share a code."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, Update, bindparam, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.selectable import ExecutableReturnsRows

from relay_ops.db import loaders
from relay_ops.db.direct import Prebuilt
from relay_ops.db.models import (
    CredentialParcel,
    Parcel,
    PickupCredential,
)
from relay_ops.domain import credentials as creds
from relay_ops.domain import grouping
from relay_ops.domain.errors import (
    DomainError,
    InvalidTransition,
    ValidationFailed,
)
from relay_ops.domain.lifecycle import State
from relay_ops.notifications.errors import InvalidRecipient
from relay_ops.notifications.messages import Channel
from relay_ops.notifications.senders import normalize_recipient
from relay_ops.services import history
from relay_ops.services.context import Ctx
from relay_ops.services.parcel_views import READY, locked_parcel
from relay_ops.services.principal import (
    Principal,
    Role,
    require_parcel,
    require_role,
)


def recipient_keys(ctx: Ctx, phone: str | None, email: str | None) -> grouping.RecipientKeys:
    pepper = ctx.settings.pickup_code_pepper
    return grouping.RecipientKeys(
        phone=_recipient_key(pepper, Channel.SMS, "phone", phone),
        email=_recipient_key(pepper, Channel.EMAIL, "email", email),
    )


def _recipient_key(pepper: bytes, channel: Channel, kind: str, raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        # Normalised as the message sender does, so "06 12.." and "+336.." are one person.
        address = normalize_recipient(channel, raw)
    except InvalidRecipient:
        return None  # no message can reach it, so no shared code could be announced
    return creds.recipient_key(pepper, kind, address)


def issue_credential(
    ctx: Ctx, session: Session, parcel: Parcel, *, holder: str, holder_name: str | None = None
) -> PickupCredential:
    """A new code, unique among the site's live codes so a code alone finds its parcel."""
    pepper, key = ctx.settings.pickup_code_pepper, ctx.settings.pickup_code_derivation_key
    digits = ctx.settings.pickup_code_digits
    for _ in range(20):
        nonce = creds.new_nonce()
        code_hash = creds.hash_code(pepper, parcel.site_id, creds.derive_code(key, nonce, digits))
        credential = _insert_unless_live(session, parcel, holder, holder_name, nonce, code_hash)
        if credential is not None:
            return credential
    # pragma: no cover - needs a site holding most of the code space
    raise DomainError("could not draw a unique pickup code; add digits to PICKUP_CODE_DIGITS")


def _insert_unless_live(
    session: Session, parcel: Parcel, holder: str, holder_name: str | None, nonce: str,
    code_hash: str,
) -> PickupCredential | None:
    """The code and its link to the parcel, written unless a live code at the site has the
    same hash (then None: draw again). The check is in the INSERT itself, no SELECT before;
    on PostgreSQL the link is written by the same statement (a data-modifying CTE)."""
    values = {"parcel_id": parcel.id, "site_id": parcel.site_id, "holder": holder,
              "holder_name": holder_name, "nonce": nonce, "code_hash": code_hash}
    if session.get_bind().dialect.name == "postgresql":
        rows = _ISSUE_ON_POSTGRESQL.rows(session, values)
        return loaders.CREDENTIALS.one(session, rows[0]) if rows else None
    credential = session.scalars(_issue_statement(postgres=False), values).first()
    if credential is not None:
        session.execute(_LINK, {"credential_id": credential.id, "parcel_id": parcel.id,
                                "added_at": credential.created_at})
    return credential


_CREDENTIALS = cast(Table, PickupCredential.__table__)
_LINKS = cast(Table, CredentialParcel.__table__)
_LINK = insert(_LINKS)
_ISSUED_COLUMNS = ("parcel_id", "site_id", "holder", "holder_name", "nonce", "code_hash")


@functools.lru_cache(maxsize=2)
def _issue_statement(postgres: bool) -> ExecutableReturnsRows:
    """The code's INSERT (and on PostgreSQL its link's, a CTE), built once with bound values
    named as its columns: a request neither builds nor compiles it. On PostgreSQL it returns
    the code's whole row, run on the driver's cursor (:data:`_ISSUE_ON_POSTGRESQL`)."""
    table = _CREDENTIALS
    taken = select(table.c.id).where(
        table.c.site_id == bindparam("site_id"), table.c.code_hash == bindparam("code_hash"),
        table.c.used_at.is_(None), table.c.revoked_at.is_(None),
    ).exists()
    row = select(*(bindparam(c, type_=table.c[c].type) for c in _ISSUED_COLUMNS)).where(~taken)
    # created_at and failed_attempts: the columns' own defaults (the clock's time, 0).
    issued = insert(table).from_select(_ISSUED_COLUMNS, row).returning(*table.c)
    if not postgres:
        return select(PickupCredential).from_statement(issued)
    written = issued.cte("issued")
    linked = insert(_LINKS).from_select(
        ["credential_id", "parcel_id", "added_at"],
        select(written.c.id, written.c.parcel_id, written.c.created_at),
    ).cte("linked")
    return select(written).add_cte(linked)


_ISSUE_ON_POSTGRESQL = Prebuilt(lambda: _issue_statement(postgres=True))


def code_of(ctx: Ctx, credential: PickupCredential) -> str:
    """The code to show its holder (the resident's page, the message)."""
    settings = ctx.settings
    return creds.issued_code(
        settings.pickup_code_derivation_key, settings.pickup_code_pepper, credential.site_id,
        credential.nonce, credential.code_hash, settings.pickup_code_digits,
    )


def lock_live_code(session: Session, site_id: int, code_hash: str) -> int | None:
    """The id of the site's live code with this hash, its row locked (the pickup then reads
    its parcels and, with them, the code itself: ``pickup_queries.code_parcels``)."""
    rows = _LIVE_CODE_BY_HASH.rows(session, {"site_id": site_id, "code_hash": code_hash})
    if not rows:
        return None
    [(credential_id,)] = rows
    session.info.setdefault(LOCKED_CODE_ROWS, set()).add(credential_id)
    return int(credential_id)


def live_credentials(session: Session, parcel_id: int) -> list[PickupCredential]:
    """The live codes that hand this parcel over (its own, or a code it shares)."""
    return list(
        session.scalars(
            select(PickupCredential)
            .join(CredentialParcel, CredentialParcel.credential_id == PickupCredential.id)
            .where(
                CredentialParcel.parcel_id == parcel_id,
                PickupCredential.used_at.is_(None),
                PickupCredential.revoked_at.is_(None),
            )
            .order_by(PickupCredential.id)
        )
    )


def spend(session: Session, credential: PickupCredential, now: datetime) -> None:
    """The code used, now: one prebuilt UPDATE of that column, the object told it is written,
    rather than a change the next flush would write (a unit of work run per pickup)."""
    _SPEND.rows(session, {"credential_id": credential.id, "used_at": now})
    set_committed_value(credential, "used_at", now)


def _spend_statement() -> Update:
    table = cast(Table, PickupCredential.__table__)
    return (update(table).where(table.c.id == bindparam("credential_id"))
            .values(used_at=bindparam("used_at")))


_SPEND = Prebuilt(_spend_statement)


def release_credentials(
    session: Session, parcel: Parcel, now: datetime,
    live: list[PickupCredential] | None = None,
) -> list[PickupCredential]:
    """A parcel left the ready state (expired, declared...): its codes die, except a code
    shared with a parcel still ready, which its recipient still needs. The revoked ones.

    ``live``: the parcel's live codes as this transaction read them under the parcel's row
    lock (nobody else can add one meanwhile), which saves reading them again."""
    if live is None:
        live = live_credentials(session, parcel.id)
    dead = [
        c for c in live
        if c.used_at is None and c.revoked_at is None
        and not any(p.id != parcel.id and p.state == READY for p in c.parcels)
    ]
    for credential in dead:
        credential.revoked_at = now
    return dead


# A site's live code by its hash, locked (bound: ``site_id``, ``code_hash``): a pickup by
# code runs it at every request, on the driver's cursor (db/direct.py).
_LIVE_CODE_BY_HASH = Prebuilt(lambda: select(PickupCredential.id).where(
    PickupCredential.site_id == bindparam("site_id"),
    PickupCredential.code_hash == bindparam("code_hash"),
    PickupCredential.used_at.is_(None),
    PickupCredential.revoked_at.is_(None),
).with_for_update())


LOCKED_CODE_ROWS = "relay_ops.locked_code_rows"


def name_proxy(ctx: Ctx, actor: Principal, parcel_id: int, proxy_name: str) -> dict[str, Any]:
    """The recipient names someone to pick up; the proxy gets a code of their own.

    Naming the person already named is a no-op that answers their live code: a form sent
    twice (a reload, a double tap) must not kill the code the neighbour was already given."""
    require_role(actor, Role.RESIDENT, Role.OPERATOR)
    if not proxy_name.strip():
        raise ValidationFailed("give the proxy's name as on their identity document")
    now = ctx.now()
    with ctx.db.transaction() as session:
        parcel = require_parcel(actor, locked_parcel(session, parcel_id), parcel_id)
        if parcel.state not in (State.ANNOUNCED.value, State.READY_FOR_PICKUP.value):
            raise InvalidTransition(f"a parcel that is {parcel.state} cannot get a proxy")
        for old in live_credentials(session, parcel.id):
            if old.holder != "proxy":
                continue
            if same_person(old.holder_name or "", proxy_name):
                return {"proxy_name": old.holder_name, "proxy_code": code_of(ctx, old)}
            old.revoked_at = now
        credential = issue_credential(
            ctx, session, parcel, holder="proxy", holder_name=proxy_name.strip()
        )
        history.record(session, parcel, "proxy_named", parcel.state, actor, now)
        return {"proxy_name": credential.holder_name, "proxy_code": code_of(ctx, credential)}


def same_person(a: str, b: str) -> bool:
    """Two spellings of one name as typed on a phone: case and spacing do not count."""
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()
