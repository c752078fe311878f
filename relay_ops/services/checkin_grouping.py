"""One recipient's parcels at a shop share one code (domain/grouping.py): the live code of a
ready parcel here for the same recipient that a parcel checked in joins, and the joining. A
locker's door (locker_door_deposit.py) joins a code by the same rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol

from sqlalchemy.orm import Session

from relay_ops.db.models import CredentialParcel, Parcel, PickupCredential, Site
from relay_ops.domain import grouping
from relay_ops.domain.site_kinds import has_shelves
from relay_ops.services import checkin_queries as queries
from relay_ops.services.context import Ctx
from relay_ops.services.credentials import recipient_keys


class GroupedParcel(Protocol):
    """What joining a group reads of its parcels still ready: their shelf (the new parcel goes
    beside them) and their numbers (the check-in's event names them)."""

    @property
    def location_id(self) -> int | None: ...

    @property
    def tracking_number(self) -> str: ...


class ReadyParcel(NamedTuple):
    id: int
    location_id: int | None
    tracking_number: str


@dataclass(frozen=True)
class Group:
    """A live recipient code at the site that a new parcel joins, and its parcels still ready."""

    credential: PickupCredential
    ready: Sequence[GroupedParcel]


def recipient_group(ctx: Ctx, session: Session, site: Site, parcel: Parcel) -> Group | None:
    """The live code of a ready parcel here for the same recipient, if any (shops only)."""
    # The keys set below go out with the check-in's one UPDATE of the parcel, not an UPDATE
    # of their own forced by these queries' autoflush.
    with session.no_autoflush:
        return _group_of(ctx, session, site, parcel)


def _group_of(ctx: Ctx, session: Session, site: Site, parcel: Parcel) -> Group | None:
    keys = recipient_keys(ctx, parcel.recipient_phone, parcel.recipient_email)
    # Kept on the parcel: a later parcel matches it even once its plain address is gone.
    parcel.recipient_phone_key, parcel.recipient_email_key = keys.phone, keys.email
    if not keys or not has_shelves(site.kind):
        return None
    rows = queries.group(bool(keys.phone), bool(keys.email)).rows(session, {
        "site_id": site.id, "parcel_id": parcel.id, "phone_key": keys.phone,
        "email_key": keys.email,
    })
    held = [
        grouping.HeldParcel(parcel_id, code_id, location_id,
                            grouping.RecipientKeys(phone_key, email_key),
                            code_locked=locked_at is not None)
        for parcel_id, location_id, _, phone_key, email_key, code_id, locked_at in rows
    ]
    chosen = grouping.group_to_join(keys, held)
    if chosen is None:
        return None
    # Locked, so a pickup cannot spend the code between this check and the commit and leave
    # the new parcel behind a used code. A code a pickup holds right now is skipped, not
    # waited for: the pickup waits for this check-in's site lock (its events' foreign key),
    # so waiting here would deadlock. The parcel then gets a code of its own.
    credential = session.scalar(queries.group_code(), {"credential_id": chosen})
    if credential is None or not credential.live:
        return None
    return Group(credential, [ReadyParcel(*row[:3]) for row in rows if row[5] == chosen])


def join_group(session: Session, group: Group, parcel: Parcel, now: datetime) -> None:
    session.add(CredentialParcel(credential_id=group.credential.id, parcel_id=parcel.id,
                                 added_at=now))
    session.flush()
    # The viewonly relationships were read before the new row: read them again.
    session.expire(group.credential, ["parcels"])
    session.expire(parcel, ["credentials"])
