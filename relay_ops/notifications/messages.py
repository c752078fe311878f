"""Notification texts for residents: what a message says, in which language, on which channel.

``render`` is pure: it takes plain values (``MessageContext``) and returns the subject and body.
It knows nothing of parcels, the database or how a message travels; ``senders`` does that.

Rules worth knowing:
- Locale is per recipient, ``fr`` (the default, and the fallback for anything unknown) or ``en``.
- Dates are shown in Europe/Paris time whatever the time zone of the datetime given, the
  French way ("mardi 1er décembre 2026 à 18:00") or the British way ("Tuesday 1 December
  2026 at 18:00"). The French writes the first day of a month "1er", as French typography
  does; every other day is a plain number.
- SMS: written in GSM 03.38 characters only and kept within two concatenated parts (306
  GSM characters) where possible: if the full text is longer, the compact variant of the
  message (without opening hours and carrier) is sent instead. The SMS carries the tracking
  link, whose page shows the QR code, rather than both links; the e-mail carries both.
- The pickup code is secret: it appears in the message body, never in an e-mail subject
  (subjects are shown on lock screens and stored in mail logs).
- A ready parcel whose code it shares with parcels already waiting for the same recipient
  (``other_parcels``) gets the ``ready_grouped`` text: with which parcels, same code, same
  place. Its compact SMS leaves out the address, which the first parcel's message gave.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from relay_ops.notifications import gsm
from relay_ops.notifications.catalog import LocaleCatalog
from relay_ops.notifications.catalog_en import EN
from relay_ops.notifications.catalog_fr import FR

DEFAULT_LOCALE = "fr"
CATALOGS: dict[str, LocaleCatalog] = {"fr": FR, "en": EN}
DISPLAY_TIME_ZONE = ZoneInfo("Europe/Paris")
SMS_MAX_PARTS = 2


class MessageKind(StrEnum):
    READY = "ready"
    REMINDER = "reminder"
    EXPIRED = "expired"
    PICKED_UP = "picked_up"
    REROUTED = "rerouted"
    # Parcels sent from a site: the sender's receipt, and when the carrier has taken it.
    DROPPED_OFF = "dropped_off"
    COLLECTED = "collected"
    REFUSED = "refused"
    # At a locker: the sender's drop-off code and QR code (docs/outbound.md, "At a locker").
    DROP_OFF_CODE = "drop_off_code"
    # Home delivery: who will bring it and when; delivered; back at the shop (not delivered).
    HOME_DELIVERY_PLANNED = "home_planned"
    HOME_DELIVERY_DELIVERED = "home_delivered"
    HOME_DELIVERY_RETURNED = "home_returned"
    # No site within reach had room (docs/overflow.md): the carrier keeps the parcel until
    # the day room is expected; or the carrier delivers it home on its own round.
    DEPOT_HOLD = "depot_hold"
    CARRIER_HOME = "carrier_home"


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


class MissingContextError(ValueError):
    """The context lacks a value this kind of message needs (e.g. a ready message without code)."""


@dataclass(frozen=True, slots=True)
class MessageContext:
    """Everything a message may show, as plain values.

    ``deadline`` is the holding deadline (for ``expired``, the one that passed); it may be None
    only for a parcel rerouted before arrival. ``pickup_code`` and ``qr_url`` are None when the
    parcel has no credential yet (rerouted before arrival) or no longer needs one (expired,
    picked up). A ``rerouted`` message with a code says the parcel is ready at the new site;
    without one, that the code will follow on arrival.
    """

    tracking_number: str
    carrier_name: str
    site_name: str
    site_address: str
    opening_hours: str
    tracking_url: str
    deadline: datetime | None = None
    pickup_code: str | None = None
    qr_url: str | None = None
    picked_up_at: datetime | None = None
    previous_site_name: str | None = None
    network_name: str = "RelayOps"
    # Tracking numbers of the parcels already waiting for the same recipient at the site
    # whose code this parcel shares: its ready message says so (``ready_grouped``).
    other_parcels: tuple[str, ...] = ()
    # A sent parcel: when its sender dropped it off, when its carrier took it.
    dropped_off_at: datetime | None = None
    collected_at: datetime | None = None
    # A home delivery: who brings the parcel (the person the resident named, or the shop),
    # on which day, and when it was delivered.
    courier_name: str | None = None
    delivery_day: date | None = None
    delivered_at: datetime | None = None
    # The holding period was shortened (season or overflow): the ready e-mail says why the
    # deadline it states is nearer than usual.
    holding_shortened: bool = False
    # A parcel the carrier keeps at its depot: the day it is now expected at the site.
    expected_day: date | None = None

    def __post_init__(self) -> None:
        for name in ("deadline", "picked_up_at", "dropped_off_at", "collected_at",
                     "delivered_at"):
            moment = getattr(self, name)
            if moment is not None and moment.utcoffset() is None:
                raise ValueError(f"{name} must be an aware datetime, got {moment!r}")


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    subject: str | None  # None for SMS
    body: str


def render(
    kind: MessageKind, channel: Channel, locale: str, ctx: MessageContext
) -> RenderedMessage:
    catalog = catalog_for(locale)
    template = _template_name(kind, ctx)
    if channel is Channel.EMAIL:
        return _render_email(catalog, template, ctx)
    return RenderedMessage(subject=None, body=_render_sms(catalog, template, ctx))


def catalog_for(locale: str) -> LocaleCatalog:
    """The catalog for ``locale`` ('fr', 'en', also 'en-GB' or 'fr_FR'); French if unknown."""
    language = locale.replace("_", "-").split("-")[0].lower() if locale else ""
    return CATALOGS.get(language, CATALOGS[DEFAULT_LOCALE])


def format_datetime(moment: datetime, catalog: LocaleCatalog, *, with_year: bool = True) -> str:
    local = moment.astimezone(DISPLAY_TIME_ZONE)
    pattern = catalog.long_datetime if with_year else catalog.short_datetime
    return pattern.format(
        weekday=catalog.weekdays[local.weekday()],
        day=catalog.first_of_month if local.day == 1 else str(local.day),
        month=catalog.months[local.month - 1],
        year=local.year,
        time=f"{local.hour:02d}:{local.minute:02d}",
    )


def _template_name(kind: MessageKind, ctx: MessageContext) -> str:
    if kind is MessageKind.REROUTED and ctx.pickup_code is None:
        return "rerouted_pending"
    if kind is MessageKind.READY and ctx.other_parcels:
        return "ready_grouped"
    if kind is MessageKind.REFUSED and ctx.pickup_code is not None:
        return "refused_locker"  # at a locker: the sender's code opens its door
    return kind.value


def _render_email(catalog: LocaleCatalog, template: str, ctx: MessageContext) -> RenderedMessage:
    fields = _email_fields(catalog, ctx)
    # A line break in a site name must not reach the Subject header, where it is refused.
    subject = " ".join(_fill(catalog, f"{template}.email.subject", fields).split())
    body = _fill(catalog, f"{template}.email.body", fields)
    if ctx.holding_shortened and template in ("ready", "ready_grouped"):
        body += "\n" + _fill(catalog, "ready.email.shortened", fields)
    footer = _fill(catalog, "email.footer", fields)
    return RenderedMessage(subject=subject, body=f"{body}\n{footer}\n")


def _render_sms(catalog: LocaleCatalog, template: str, ctx: MessageContext) -> str:
    fields = _sms_fields(catalog, ctx)
    full = gsm.to_gsm(_fill(catalog, f"{template}.sms", fields))
    compact_key = f"{template}.sms.compact"
    if gsm.measure(full).parts <= SMS_MAX_PARTS or compact_key not in catalog.messages:
        return full
    # Even if the compact text is still too long (a very long site name), it is the cheaper one.
    return gsm.to_gsm(_fill(catalog, compact_key, fields))


def _email_fields(catalog: LocaleCatalog, ctx: MessageContext) -> dict[str, str | None]:
    fields = _common_fields(catalog, ctx)
    fields.update(site_address=ctx.site_address.strip(), opening_hours=ctx.opening_hours.strip())
    return fields


def _sms_fields(catalog: LocaleCatalog, ctx: MessageContext) -> dict[str, str | None]:
    fields = _common_fields(catalog, ctx)
    # An address or opening hours typed on several lines read as one line in an SMS.
    fields.update(
        {name: _one_line(value) if value is not None else None for name, value in fields.items()}
    )
    return fields


def _common_fields(catalog: LocaleCatalog, ctx: MessageContext) -> dict[str, str | None]:
    fields = _detail_fields(catalog, ctx)
    if ctx.other_parcels:
        # The phrase agrees with the number of parcels: "with parcel" / "avec les colis".
        many = len(ctx.other_parcels) > 1
        phrase = "ready_grouped.with_many" if many else "ready_grouped.with_one"
        fields["other_parcels"] = ", ".join(ctx.other_parcels)
        fields["grouped_with"] = _fill(catalog, phrase, fields)
    return fields


def _detail_fields(catalog: LocaleCatalog, ctx: MessageContext) -> dict[str, str | None]:
    return {
        "tracking_number": ctx.tracking_number,
        "carrier_name": ctx.carrier_name,
        "site_name": ctx.site_name,
        "site_address": ctx.site_address,
        "opening_hours": ctx.opening_hours,
        "tracking_url": ctx.tracking_url,
        "pickup_code": ctx.pickup_code,
        "qr_url": ctx.qr_url,
        "previous_site_name": ctx.previous_site_name,
        "network_name": ctx.network_name,
        "deadline": _maybe_datetime(ctx.deadline, catalog, with_year=True),
        "deadline_short": _maybe_datetime(ctx.deadline, catalog, with_year=False),
        "picked_up_at": _maybe_datetime(ctx.picked_up_at, catalog, with_year=True),
        "picked_up_at_short": _maybe_datetime(ctx.picked_up_at, catalog, with_year=False),
        "dropped_off_at": _maybe_datetime(ctx.dropped_off_at, catalog, with_year=True),
        "dropped_off_at_short": _maybe_datetime(ctx.dropped_off_at, catalog, with_year=False),
        "collected_at": _maybe_datetime(ctx.collected_at, catalog, with_year=True),
        "collected_at_short": _maybe_datetime(ctx.collected_at, catalog, with_year=False),
        "courier_name": ctx.courier_name,
        "delivery_day": _maybe_day(ctx.delivery_day, catalog),
        "delivered_at": _maybe_datetime(ctx.delivered_at, catalog, with_year=True),
        "delivered_at_short": _maybe_datetime(ctx.delivered_at, catalog, with_year=False),
        "expected_day": _maybe_day(ctx.expected_day, catalog),
    }


def _maybe_day(day: date | None, catalog: LocaleCatalog) -> str | None:
    """A day without a time, "mardi 8 décembre" / "Tuesday 8 December"."""
    if day is None:
        return None
    number = catalog.first_of_month if day.day == 1 else str(day.day)
    return f"{catalog.weekdays[day.weekday()]} {number} {catalog.months[day.month - 1]}"


def _maybe_datetime(
    moment: datetime | None, catalog: LocaleCatalog, *, with_year: bool
) -> str | None:
    return None if moment is None else format_datetime(moment, catalog, with_year=with_year)


def _one_line(text: str) -> str:
    return ", ".join(line.strip() for line in text.splitlines() if line.strip())


def _fill(catalog: LocaleCatalog, key: str, fields: dict[str, str | None]) -> str:
    template = catalog.messages[key]
    missing = [name for name in placeholders(template) if fields.get(name) in (None, "")]
    if missing:
        raise MissingContextError(f"message {key!r} needs {', '.join(sorted(missing))}")
    return template.format(**fields)


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}
