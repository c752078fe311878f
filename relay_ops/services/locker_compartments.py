"""A locker's rows and which door a parcel gets: the locker site locked, its link, its
compartments and what each holds or waits for, doors shared by one recipient's parcels, and
the allocation of the smallest free door that takes a parcel.

Serialisation: every use case that changes a locker's compartments first locks the locker's
site row (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite every write transaction is
``BEGIN IMMEDIATE``), so two carriers, or a carrier and a resident, never get the same door.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import Compartment, LockerLink, Parcel, Site
from relay_ops.domain import grouping, sizing
from relay_ops.domain.errors import DomainError, NotFound
from relay_ops.domain.lifecycle import State
from relay_ops.services.context import Ctx
from relay_ops.services.credentials import live_credentials, recipient_keys

FULL = "no free compartment"  # how a refusal for a full locker (not a too-big parcel) begins
# What a door holds: received parcels, and parcels sent from the locker waiting for their
# carrier (docs/outbound.md, "At a locker").
HELD_IN_BOX = (State.READY_FOR_PICKUP.value, State.EXPIRED.value, State.DAMAGED.value,
               State.DROPPED_OFF.value, State.AWAITING_COLLECTION.value, State.REFUSED.value)
OUTBOUND = "outbound"  # domain/outbound.DIRECTION (this module imports no use case)


class ParcelDoesNotFit(DomainError):
    slug = "parcel-does-not-fit"
    title = "No free compartment of this locker takes the parcel"


def locked_locker(session: Session, site_id: int) -> Site:
    site = session.get(Site, site_id, with_for_update=True)
    if site is None or site.kind != "locker":
        raise NotFound(f"no locker {site_id}")
    return site


def locker_by_code(session: Session, code: str, *, lock: bool = False) -> Site:
    query = select(Site).where(Site.code == code, Site.kind == "locker")
    if lock:
        query = query.with_for_update()
    site = session.scalar(query)
    if site is None:
        raise NotFound(f"no locker {code!r}")
    return site


def link_of(session: Session, site: Site, *, lock: bool = False) -> LockerLink:
    link = session.get(LockerLink, site.id, with_for_update=lock)
    if link is None:  # a locker site created before it was registered as one
        link = LockerLink(site_id=site.id, online=False)
        session.add(link)
        session.flush()
    return link


def lock_locker_of(session: Session, parcel_id: int) -> None:
    """Take the locker's row lock before a parcel's (same order as the bridge: no deadlock)."""
    site_id = session.scalar(select(Parcel.site_id).where(Parcel.id == parcel_id))
    if site_id is not None:
        session.scalar(select(Site.id).where(Site.id == site_id, Site.kind == "locker")
                       .with_for_update())


def compartments_of(session: Session, site_id: int) -> list[Compartment]:
    return list(session.scalars(
        select(Compartment).where(Compartment.site_id == site_id).order_by(Compartment.number)
    ))


def compartment(session: Session, site_id: int, number: int) -> Compartment | None:
    return session.scalar(
        select(Compartment).where(Compartment.site_id == site_id, Compartment.number == number)
    )


def parcel_in(session: Session, box: Compartment) -> Parcel | None:
    return next(iter(parcels_in(session, box)), None)


def parcels_in(session: Session, box: Compartment) -> list[Parcel]:
    """Everything the door holds: one parcel, or several for one recipient sharing it."""
    return list(session.scalars(
        select(Parcel).where(Parcel.compartment_id == box.id, Parcel.state.in_(HELD_IN_BOX))
        .order_by(Parcel.id)
    ))


def reserved_parcel(session: Session, box: Compartment) -> Parcel | None:
    return next(iter(reserved_parcels(session, box)), None)


def reserved_parcels(session: Session, box: Compartment) -> list[Parcel]:
    """The parcels on their way to this door: one, or a recipient's several reserved ahead."""
    return list(session.scalars(
        select(Parcel).where(Parcel.compartment_id == box.id,
                             Parcel.state == State.ANNOUNCED.value).order_by(Parcel.id)
    ))


def settle(session: Session, box: Compartment) -> None:
    """The compartment's state from what it waits for and what it holds (out of service
    stays so). A door shared by a recipient's parcels may hold some and wait for another:
    it is then `reserved`, not free to anyone else."""
    if box.state == "out_of_service":
        return
    if reserved_parcel(session, box) is not None:  # a session's or in advance
        box.state = "reserved"
    elif parcel_in(session, box) is not None:
        box.state, box.reserved_until, box.reserved_session_id = "occupied", None, None
    else:
        box.state, box.reserved_until, box.reserved_session_id = "free", None, None


def is_advance_reservation(box: Compartment) -> bool:
    """Reserved ahead of the carrier's visit (no drop-off session holds it)."""
    return (box.state in ("reserved", "door_open") and box.reserved_session_id is None
            and box.reserved_until is not None)


def recipient_keys_of(ctx: Ctx, parcel: Parcel) -> grouping.RecipientKeys:
    """Stored at check-in; read from the plain address for a parcel stored before that."""
    if parcel.recipient_phone_key or parcel.recipient_email_key:
        return grouping.RecipientKeys(parcel.recipient_phone_key, parcel.recipient_email_key)
    return recipient_keys(ctx, parcel.recipient_phone, parcel.recipient_email)


def _shared_box(ctx: Ctx, session: Session, site: Site, parcel: Parcel,
                until: datetime | None = None) -> Compartment | None:
    """A door of this recipient's parcels, brought by the same carrier, that takes this one
    laid on them (docs/forecast.md, "Parcels grouped at a locker"): a closed door holding
    their ready parcels, or, for a reservation made ahead that ends by ``until``, a door
    reserved ahead for their parcels on the way."""
    keys = recipient_keys_of(ctx, parcel)
    if not keys or parcel.carrier_id is None or parcel.direction == OUTBOUND:
        return None  # a sent parcel leaves with its carrier: it shares no resident's door
    states = ("occupied", "reserved") if until is not None else ("occupied",)
    boxes = {box.id: box for box in session.scalars(select(Compartment).where(
        Compartment.site_id == site.id, Compartment.state.in_(states)))
        if box.state == "occupied" or (
            is_advance_reservation(box) and until is not None
            and box.reserved_until is not None and until <= box.reserved_until)}
    if not boxes:
        return None
    inside: dict[int, list[Parcel]] = {box_id: [] for box_id in boxes}
    for other in session.scalars(select(Parcel).where(
            Parcel.compartment_id.in_(boxes), Parcel.id != parcel.id,
            Parcel.state.in_((*HELD_IN_BOX, State.ANNOUNCED.value))).order_by(Parcel.id)):
        inside[other.compartment_id].append(other)  # type: ignore[index]
    doors = [_door(ctx, session, box_id, parcels) for box_id, parcels in inside.items()
             if parcels and all(p.state in (State.READY_FOR_PICKUP.value, State.ANNOUNCED.value)
                                and p.direction != OUTBOUND for p in parcels)]
    dims = parcel_dims(ctx, parcel)

    def room_for(box_id: int) -> bool:
        box = boxes[box_id]
        stack = [parcel_dims(ctx, p) for p in inside[box_id]]
        return sizing.fit_together([*stack, dims], (box.height_mm, box.width_mm, box.depth_mm))

    chosen = grouping.door_to_share(keys, parcel.carrier_id, doors, room_for)
    return boxes[chosen] if chosen is not None else None


def _door(ctx: Ctx, session: Session, box_id: int, parcels: list[Parcel]) -> grouping.Door:
    locked = any(c.locked_at is not None for p in parcels
                 if p.state == State.READY_FOR_PICKUP.value
                 for c in live_credentials(session, p.id))
    return grouping.Door(box_id, tuple(recipient_keys_of(ctx, p) for p in parcels),
                         tuple(p.carrier_id for p in parcels), code_locked=locked)


def shares_with(session: Session, box: Compartment) -> list[str]:
    """The tracking numbers a door already holds (for the events of a shared reservation)."""
    return [p.tracking_number for p in parcels_in(session, box)]


def parcel_dims(ctx: Ctx, parcel: Parcel) -> sizing.Dims:
    if parcel.height_mm and parcel.width_mm and parcel.depth_mm:
        return (parcel.height_mm, parcel.width_mm, parcel.depth_mm)
    classes = ctx.settings.size_classes
    size_class = parcel.size_class or sizing.smallest_class(classes)
    return classes[size_class]


class DoorPool:
    """Free doors as a parcel takes one (the drop-off's rule, :func:`allocate`): the
    smallest it fits (``sizing.CompartmentPool``: smallest volume, then lowest number), a
    refrigerated one only when no other takes it. Taken one after another, they count the
    doors left per size class (:func:`free_doors_left`)."""

    def __init__(self, boxes: Sequence[Compartment]) -> None:
        self.size_of = {b.number: b.size_class for b in boxes}
        self.tiers = [sizing.CompartmentPool(
            sizing.Compartment(b.number, (b.height_mm, b.width_mm, b.depth_mm))
            for b in boxes if bool(b.refrigerated) == cold) for cold in (False, True)]
        self.taken: set[int] = set()

    def take(self, dims: sizing.Dims) -> sizing.Compartment | None:
        for tier in self.tiers:
            if (chosen := tier.take(dims)) is not None:
                self.taken.add(chosen.number)
                return chosen
        return None

    def count(self, size_class: str) -> int:
        return sum(1 for number, size in self.size_of.items()
                   if size == size_class and number not in self.taken)


def allocate(ctx: Ctx, session: Session, site: Site, parcel: Parcel,
              until: datetime | None = None, *, keep_cold: bool = False
              ) -> tuple[Compartment | None, str]:
    """The door for a parcel: one of its recipient's (`_shared_box`), else the smallest free
    door it fits; ``until``: the end of a reservation made ahead. A ``keep_cold`` item goes
    to a refrigerated door only; the others go to a refrigerated door only when no other
    door takes them (the fridge is kept for what needs it)."""
    shared = None if keep_cold else _shared_box(ctx, session, site, parcel, until)
    if shared is not None:
        return shared, ""
    boxes = [b for b in compartments_of(session, site.id) if b.refrigerated or not keep_cold]
    dims = parcel_dims(ctx, parcel)
    chosen = DoorPool([b for b in boxes if b.state == "free"]).take(dims)
    if chosen is not None:
        return next(b for b in boxes if b.number == chosen.number), ""
    every = [sizing.Compartment(b.number, (b.height_mm, b.width_mm, b.depth_mm)) for b in boxes]
    size = "x".join(str(d) for d in dims)
    cold = "refrigerated " if keep_cold else ""
    if sizing.choose_compartment(every, dims) is None:
        return None, f"a parcel of {size} mm fits no {cold}compartment of {site.code}"
    return None, f"{FULL} of {site.code} takes a parcel of {size} mm" + (
        " (refrigerated)" if keep_cold else "")


def has_room(ctx: Ctx, session: Session, site: Site, parcel: Parcel,
             promised: Sequence[Parcel] = ()) -> bool:
    """A free compartment of ``site`` takes the parcel now, once each parcel ``promised`` a
    door here (a place held for it, no door yet) has taken its own by the same rule."""
    return _free_left(ctx, session, site, promised).take(parcel_dims(ctx, parcel)) is not None


def free_doors_left(ctx: Ctx, session: Session, site: Site, promised: Sequence[Parcel] = ()
                    ) -> dict[str, int]:
    """Free doors per size class once each parcel ``promised`` a door has taken its own: the
    locker's room per size class, as the reroute planner counts it."""
    left = _free_left(ctx, session, site, promised)
    return {size: left.count(size) for size in sizing.class_ranks(ctx.settings.size_classes)}


def _free_left(ctx: Ctx, session: Session, site: Site, promised: Sequence[Parcel]
               ) -> DoorPool:
    pool = DoorPool([b for b in compartments_of(session, site.id) if b.state == "free"])
    for parcel in promised:
        pool.take(parcel_dims(ctx, parcel))  # none left for it: it counts no further
    return pool
