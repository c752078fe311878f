"""Manifests: a carrier announces the parcels of a round before the van leaves.

Each parcel is accepted or rejected on its own, with a reason. The whole announcement is
stored with a fingerprint of the request, so sending it again (a retry after a timeout)
replays the first answer instead of creating anything twice.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from relay_ops.db import bulk
from relay_ops.db.models import Carrier, Manifest, Parcel, Site
from relay_ops.domain import tracking
from relay_ops.domain.errors import Conflict, DomainError, NotFound, ValidationFailed
from relay_ops.domain.lifecycle import State
from relay_ops.services import history, locker_reservations, notify, reroute
from relay_ops.services.checkin_registration import set_size
from relay_ops.services.context import Ctx
from relay_ops.services.parcel_views import parcel_view
from relay_ops.services.principal import Principal, Role, require_role
from relay_ops.services.site_calendar import closing_days_of

MAX_PARCELS = 5000


class Rejected(DomainError):
    """One parcel of a manifest refused; the others go on."""


def fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def announce(ctx: Ctx, actor: Principal, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(HTTP-like status, answer). 201 the first time, 200 with the same answer on a replay."""
    require_role(actor, Role.CARRIER)
    reference = str(body.get("reference", "")).strip()
    if not reference:
        raise ValidationFailed("a manifest has a reference (the carrier's round or batch id)")
    items = body.get("parcels") or []
    if len(items) > MAX_PARCELS:
        raise ValidationFailed(f"at most {MAX_PARCELS} parcels per manifest")
    digest = fingerprint(body)
    with ctx.db.transaction() as session:
        carrier = session.get(Carrier, actor.carrier_id)
        if carrier is None:
            raise NotFound("unknown carrier")
        previous = session.scalar(
            select(Manifest).where(
                Manifest.carrier_id == carrier.id, Manifest.reference == reference
            )
        )
        if previous is not None:
            if previous.request_fingerprint != digest:
                raise Conflict(
                    f"manifest {reference!r} was already announced with different content",
                    manifest_id=previous.id,
                )
            return 200, previous.response
        manifest = Manifest(
            carrier_id=carrier.id,
            reference=reference,
            expected_date=_date_or_none(body.get("expected_date")),
            request_fingerprint=digest,
            response={},
        )
        session.add(manifest)
        session.flush()
        results, created = _announce_parcels(ctx, session, actor, carrier, manifest, items)
        reroute.check_manifest(ctx, session, actor, carrier, results, created)
        # parcels due soon at a locker get their door now (synced: offline deposits work)
        locker_reservations.reserve_ahead_at(ctx, session, {
            site.id for site in _lock_sites(session, items).values()
            if site is not None and site.kind == "locker"})
        answer = {
            "id": manifest.id,
            "reference": reference,
            "expected_date": manifest.expected_date.isoformat() if manifest.expected_date else None,
            "accepted": sum(r["status"] == "accepted" for r in results),
            "rejected": sum(r["status"] == "rejected" for r in results),
            "parcels": results,
        }
        manifest.response = answer
        return 201, answer


def _date_or_none(value: Any) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValidationFailed(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _announce_parcels(
    ctx: Ctx, session: Session, actor: Principal, carrier: Carrier, manifest: Manifest,
    items: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[Parcel]]:
    """Each item judged on its own (a refused one does not stop the others), then the new
    parcels and their events written together, one statement each (``db/bulk.py``: a
    manifest holds up to 5,000 parcels, announced in one request), not a round trip per
    parcel. The answers, and the new parcels (in the session, for the saturation check: not
    read again)."""
    seen: set[str] = set()
    sites = _lock_sites(session, items)
    known = _known_parcels(session, carrier, items)
    closing: dict[int, set[date]] = {}
    outcomes: list[tuple[int, str, Parcel | DomainError, str]] = []
    for index, item in enumerate(items):
        raw = str(item.get("tracking_number", ""))
        try:
            parcel, status = _announce_one(
                ctx, session, actor, carrier, manifest, item, seen, sites, known, closing
            )
        except DomainError as err:
            outcomes.append((index, raw, err, "rejected"))
            continue
        outcomes.append((index, raw, parcel, status))
    created = [p for _, _, p, status in outcomes if isinstance(p, Parcel) and status == "created"]
    now = ctx.now()
    for parcel in created:  # on the row as it is inserted, not by a second write
        history.keep_firsts(parcel, history.ANNOUNCE, now)
    bulk.insert_objects(session, created)
    history.record_many(
        session, created, history.ANNOUNCE, actor, now,
        lambda parcel: {"manifest": manifest.reference,
                        "expected_date": _iso(parcel.expected_date)},
    )
    return [_result(index, raw, outcome, status)
            for index, raw, outcome, status in outcomes], created


def _result(
    index: int, raw: str, outcome: Parcel | DomainError, status: str
) -> dict[str, Any]:
    if isinstance(outcome, DomainError):
        return {"index": index, "tracking_number": raw, "status": "rejected",
                "reason": outcome.slug, "detail": outcome.detail}
    return {
        "index": index, "tracking_number": outcome.tracking_number, "status": "accepted",
        "parcel_id": outcome.id, "state": outcome.state, "reconciled": status == "reconciled",
    }


def _known_parcels(
    session: Session, carrier: Carrier, items: list[dict[str, Any]]
) -> dict[str, list[Parcel]]:
    """The parcels under the manifest's numbers that the announcement may meet, row-locked,
    in one read: the carrier's own, and those a shop registered unannounced without a carrier
    (one of them here is this parcel). Another carrier's are not read at all: numbers are
    unique per carrier, and the answer must not depend on them (no existence oracle,
    docs/decisions/0007-tracking-numbers-per-carrier.md). A number that is not valid cannot
    be among them, and is refused later."""
    numbers = {tracking.normalise(str(item.get("tracking_number", ""))) for item in items}
    rows = session.scalars(
        select(Parcel).where(
            Parcel.tracking_number.in_(sorted(numbers)),
            or_(Parcel.carrier_id == carrier.id,
                and_(Parcel.carrier_id.is_(None), Parcel.unannounced.is_(True))))
        .order_by(Parcel.id).with_for_update()
    )
    known: dict[str, list[Parcel]] = {}
    for parcel in rows:
        known.setdefault(parcel.tracking_number, []).append(parcel)
    return known


def _announce_one(
    ctx: Ctx, session: Session, actor: Principal, carrier: Carrier, manifest: Manifest,
    item: dict[str, Any], seen: set[str], sites: dict[str, Site | None],
    known: dict[str, list[Parcel]], closing: dict[int, set[date]],
) -> tuple[Parcel, str]:
    """The item's parcel, new (not yet added to the session) or reconciled, or a refusal."""
    try:
        number = tracking.validate(str(item.get("tracking_number", "")))
    except DomainError as err:
        raise _reject("invalid-tracking-number", err.detail) from None
    if number in seen:
        raise _reject("duplicate-tracking-number", f"{number} appears twice in this manifest")
    seen.add(number)
    site = _site(session, sites, str(item.get("site", "")))
    recipient = item.get("recipient") or {}
    if not (recipient.get("phone") or recipient.get("email")):
        raise _reject("missing-recipient-contact", "a recipient phone or e-mail is required")
    expected = _date_or_none(item.get("expected_date")) or manifest.expected_date
    if site.id not in closing:
        closing[site.id] = closing_days_of(session, site.id)
    _check_site_takes_parcels(site, expected, closing[site.id])
    existing = _announced_before(known.get(number, []), carrier, site)
    if existing is not None:
        return _reconcile(ctx, session, actor, carrier, manifest, existing, recipient), (
            "reconciled"
        )
    parcel = Parcel(
        tracking_number=number, carrier_id=carrier.id, manifest_id=manifest.id, site_id=site.id,
        state=State.ANNOUNCED.value, recipient_name=recipient.get("name"),
        recipient_phone=recipient.get("phone"), recipient_email=recipient.get("email"),
        recipient_locale=recipient.get("locale") or "fr", expected_date=expected,
        weight_g=item.get("weight_g"),
    )
    try:
        set_size(ctx, parcel, item.get("size_class"), _dims(item.get("dimensions_mm")))
    except DomainError as err:
        raise _reject("invalid-size", err.detail) from None
    return parcel, "created"


def _announced_before(known: list[Parcel], carrier: Carrier, site: Site) -> Parcel | None:
    """The parcel this item is, if any: the carrier's own under the number (one a shop
    registered here unannounced is matched; any other is a duplicate, refused), else one of
    no carrier registered unannounced at this very site. A parcel of no carrier elsewhere
    is another parcel: the carrier's is created beside it."""
    own = next((p for p in known if p.carrier_id == carrier.id), None)
    if own is not None:
        if not own.unannounced or own.site_id != site.id:
            raise _reject("duplicate-tracking-number",
                          f"{own.tracking_number} already exists")
        return own
    return next((p for p in known if p.carrier_id is None and p.site_id == site.id), None)


def _reconcile(
    ctx: Ctx, session: Session, actor: Principal, carrier: Carrier, manifest: Manifest,
    parcel: Parcel, recipient: dict[str, Any],
) -> Parcel:
    """A parcel a shop checked in without a manifest is matched with its announcement."""
    had_contact = bool(parcel.recipient_phone or parcel.recipient_email)
    parcel.carrier_id, parcel.manifest_id, parcel.unannounced = carrier.id, manifest.id, False
    parcel.recipient_name = recipient.get("name") or parcel.recipient_name
    parcel.recipient_phone = recipient.get("phone") or parcel.recipient_phone
    parcel.recipient_email = recipient.get("email") or parcel.recipient_email
    parcel.recipient_locale = recipient.get("locale") or parcel.recipient_locale
    history.record(
        session, parcel, "reconciled", parcel.state, actor, ctx.now(),
        data={"manifest": manifest.reference},
    )
    if parcel.state == State.READY_FOR_PICKUP.value and not had_contact:
        notify.queue(session, parcel, "ready")
    return parcel


def _lock_sites(session: Session, items: list[dict[str, Any]]) -> dict[str, Site | None]:
    """Lock the manifest's sites first, in id order, as a check-in locks its site first.

    The saturation check needs them locked (two manifests must not both take the last
    places), and taking the locks before any parcel row references a site avoids the
    deadlock of two transactions upgrading the key-share lock their inserts took.
    """
    codes = sorted({str(item.get("site", "")) for item in items})
    found: dict[str, Site | None] = dict.fromkeys(codes)
    query = select(Site).where(Site.code.in_(codes)).order_by(Site.id).with_for_update()
    for site in session.scalars(query):
        found[site.code] = site
    return found


def _reject(slug: str, detail: str) -> Rejected:
    return Rejected(detail, slug=slug)


def _site(session: Session, cache: dict[str, Site | None], code: str) -> Site:
    if code not in cache:
        cache[code] = session.scalar(select(Site).where(Site.code == code))
    site = cache[code]
    if site is None:
        raise _reject("unknown-site", f"no site {code!r}")
    return site


def _check_site_takes_parcels(site: Site, day: date | None, closing: set[date]) -> None:
    if site.status == "closed":
        raise _reject("site-closed", f"{site.name} is closed")
    if site.status == "saturated":
        raise _reject("site-saturated", f"{site.name} is saturated and takes no new parcels")
    if day is not None and day in closing:
        raise _reject("site-closed", f"{site.name} is closed on {day.isoformat()}")


def _dims(value: Any) -> tuple[int, int, int] | None:
    if value is None:
        return None
    try:
        h, w, d = (int(x) for x in value)
    except (TypeError, ValueError):
        raise ValidationFailed("dimensions_mm is [height, width, depth] in mm") from None
    if min(h, w, d) <= 0:
        raise ValidationFailed("dimensions are positive")
    return (h, w, d)


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def get_manifest(ctx: Ctx, actor: Principal, manifest_id: int) -> dict[str, Any]:
    """The manifest with its reconciliation: expected, checked in, missing, unexpected."""
    require_role(actor, Role.CARRIER, Role.OPERATOR)
    with ctx.db.read() as session:
        manifest = session.get(Manifest, manifest_id)
        if manifest is None or (
            actor.role is Role.CARRIER and manifest.carrier_id != actor.carrier_id
        ):
            raise NotFound(f"no manifest {manifest_id}")
        parcels = list(session.scalars(select(Parcel).where(Parcel.manifest_id == manifest.id)))
        counts: dict[str, int] = {}
        for p in parcels:
            counts[p.state] = counts.get(p.state, 0) + 1
        not_arrived = [p.tracking_number for p in parcels if p.state == State.ANNOUNCED.value]
        return {
            "id": manifest.id,
            "reference": manifest.reference,
            "expected_date": _iso(manifest.expected_date),
            "created_at": manifest.created_at.isoformat(),
            "expected": len(parcels),
            "checked_in": len(parcels) - len(not_arrived),
            "not_arrived": not_arrived,
            "rejected": [
                r for r in manifest.response.get("parcels", []) if r["status"] == "rejected"
            ],
            "reconciled": [
                r["tracking_number"] for r in manifest.response.get("parcels", [])
                if r.get("reconciled")
            ],
            "by_state": counts,
            "parcels": [parcel_view(p, actor) for p in parcels],
        }


def list_manifests(ctx: Ctx, actor: Principal, page: int, per_page: int) -> dict[str, Any]:
    require_role(actor, Role.CARRIER, Role.OPERATOR)
    query = select(Manifest)
    if actor.role is Role.CARRIER:
        query = query.where(Manifest.carrier_id == actor.carrier_id)
    with ctx.db.read() as session:
        rows = list(
            session.scalars(
                query.order_by(Manifest.id.desc()).offset((page - 1) * per_page).limit(per_page)
            )
        )
        return {
            "items": [
                {"id": m.id, "reference": m.reference, "expected_date": _iso(m.expected_date),
                 "accepted": m.response.get("accepted"), "rejected": m.response.get("rejected")}
                for m in rows
            ],
            "page": page,
            "per_page": per_page,
        }
