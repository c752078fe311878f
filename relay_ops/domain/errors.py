"""Errors raised by the domain and the services.

Each error carries a stable ``slug`` (it becomes the problem ``type`` of the HTTP API and the
reason code of the CLI, the bridge and the jobs), an HTTP-like status and a human detail.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    slug: str = "domain-error"
    title: ClassVar[str] = "The request breaks a business rule"
    status: ClassVar[int] = 409

    def __init__(self, detail: str, *, slug: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        if slug is not None:
            self.slug = slug


class NotFound(DomainError):
    slug = "not-found"
    title = "No such object, or not yours to see"
    status = 404


class ValidationFailed(DomainError):
    slug = "validation-failed"
    title = "The request is not valid"
    status = 422


class InvalidTrackingNumber(ValidationFailed):
    slug = "invalid-tracking-number"
    title = "The tracking number is not valid"


class Unauthenticated(DomainError):
    slug = "unauthenticated"
    title = "Credentials are missing or wrong"
    status = 401


class Forbidden(DomainError):
    slug = "forbidden"
    title = "This role may not do that"
    status = 403


class InvalidTransition(DomainError):
    slug = "invalid-transition"
    title = "The parcel cannot do that in its current state"


class WrongSite(DomainError):
    slug = "wrong-site"
    title = "The parcel belongs to another site"


class NoShelves(DomainError):
    """A shelf or counter operation (a check-in, shelf locations, temporary shelves, a deposit
    to send, a collection, a hand-back or a take-back at the counter) at a site that has none:
    a locker's parcels go through its doors (drop-off sessions, codes). The site's kind refuses
    it, not the request's form (the same body is accepted at a shop)."""

    slug = "site-has-no-shelves"
    title = "This site has no shelves"


class ShopsOnly(DomainError):
    """An operation only shops offer (sending at the counter, temporary shelves) asked of a
    storage site: the site's kind refuses it, not the request's form (409, as ``NoShelves``)."""

    slug = "shops-only"
    title = "Only a shop does this"


class PeriodOver(DomainError):
    """A period (a temporary shelf's) that ended before today: the same body was valid
    until then, so today's date refuses it, not the request's form."""

    slug = "period-over"
    title = "The period is over"


class FitsNoSizeClass(DomainError):
    """A parcel whose measures fit none of the network's size classes (its configuration): a
    rule between the three measures and the classes, which the document cannot state for
    each body, so a body valid under it is refused by the network's classes, not its form."""

    slug = "fits-no-size-class"
    title = "The parcel fits no size class"


class SellByOutOfReach(DomainError):
    """A producer's sell-by time already passed (at announce or at the counter) or more than
    a year ahead: the same body was, or will be, valid on another day, so today's date refuses
    it, not the request's form (as ``PeriodOver``)."""

    slug = "sell-by-out-of-reach"
    title = "The sell-by time is out of reach today"


class UnannouncedParcel(DomainError):
    slug = "unannounced-parcel"
    title = "No carrier announced this parcel; confirm to check it in anyway"


class SiteAtCapacity(DomainError):
    slug = "site-at-capacity"
    title = "The site has no room for this parcel"


class NoColdPlace(SiteAtCapacity):
    """A "keep cold" item and no refrigerated place free: a kind of full shop (an announced
    order stays announced, as for any parcel turned away), with its own slug so the counter
    says what to do (free a place in the fridge, or keep the item back)."""

    slug = "no-cold-place"
    title = "No refrigerated place is free for this item"


class WrongPickupCode(DomainError):
    slug = "wrong-pickup-code"
    title = "The pickup code is wrong"
    status = 403


class CredentialLocked(DomainError):
    slug = "pickup-code-locked"
    title = "Too many wrong codes: an identity check is required"
    status = 423


class IdentityCheckRequired(DomainError):
    slug = "identity-check-required"
    title = "An identity document must be checked and recorded"
    status = 428


class CodeNeedsMore(DomainError):
    slug = "code-needs-tracking-or-name"
    title = "A code alone is not enough here now: add the tracking number or the recipient's name"
    status = 428


class ExtensionRefused(DomainError):
    slug = "extension-refused"
    title = "The holding period cannot be extended"


class Conflict(DomainError):
    slug = "conflict"
    title = "The request conflicts with an earlier one"


class AmbiguousTrackingNumber(Conflict):
    """Two carriers printed the same number and both parcels are in the asker's sight: the
    asker names the carrier (``carriers`` lists the candidates'). Only staff can meet it; a
    carrier sees its own numbers alone, which are unique (docs/decisions/0007)."""

    slug = "ambiguous-tracking-number"
    title = "Several carriers' parcels carry this number; name the carrier"


class IdempotencyKeyReused(DomainError):
    slug = "idempotency-key-reused"
    title = "This Idempotency-Key was used with a different request"
    status = 422


class TooManyAttempts(DomainError):
    slug = "too-many-attempts"
    title = "Too many failed attempts; wait before trying again"
    status = 429


class LabelNotCollectedHere(DomainError):
    """A label the document allows that no carrier serving this site takes (the carriers'
    declared networks): a conflict with the state of that site (409), as for
    ``ServiceNotOffered``."""

    slug = "label-not-collected-here"
    title = "No carrier that serves this site collects parcels with this label"


class CarrierChoiceNeeded(DomainError):
    slug = "carrier-choice-needed"
    title = "Several carriers serving this site collect this label: name one"


class ProducerChoiceNeeded(DomainError):
    slug = "producer-choice-needed"
    title = "Several producers have an order with this reference here"


class OnBehalfOf(DomainError):
    """Whom a request acts for depends on who sends it: staff name the carrier or producer
    they act for, a carrier or a producer acts for itself and names nobody else. The document
    cannot require or forbid a field for some callers alone, so this is refused by rule
    (409), not as an invalid body (422)."""

    slug = "on-behalf-of"
    title = "Staff name whom they act for; a carrier or producer acts for itself"


class HomeDeliveryRefused(DomainError):
    """A request the document allows, refused by the site's offer, the day or the parcel's
    state: a conflict with the state of things (409), not a malformed request (422)."""

    slug = "home-delivery-refused"
    title = "This home delivery cannot be arranged"


class ServiceNotOffered(DomainError):
    """A site asked for a service it does not declare (``domain/site_services.py``): the
    request is well formed (the document allows it), the site's declared services refuse it,
    so it is a conflict with the state of that site (409; it succeeds once the site declares
    the service), never 422, which says the request itself is invalid. The problem names the
    ``service`` and the ``site``."""

    slug = "service-not-offered"
    title = "This site does not offer this service"
