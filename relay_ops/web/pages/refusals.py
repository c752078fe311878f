"""What a refusal means, said to a shopkeeper or a resident in their language.

Services explain refusals in English for the API and the logs; pages translate by the stable
error slug and the structured extras (nearest site, attempts left), and fall back to the
service's own sentence for anything not listed here.
"""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _

from relay_ops.domain.errors import DomainError


def explain(err: DomainError) -> tuple[str, str]:
    """(short title, one-sentence explanation)."""
    extra: dict[str, Any] = err.extra
    match err.slug:
        case "invalid-tracking-number":
            return _("Unknown barcode format"), _(
                "This is not a tracking number we know. Scan the carrier's barcode again, "
                "or type the number printed under it.")
        case "unannounced-parcel":
            return _("Not announced"), _(
                "No carrier announced this parcel. Accept it only if the label is readable "
                "and addressed to this shop.")
        case "site-at-capacity" if extra.get("kept_for_reroutes"):
            # Free places on the shelves, but promised to parcels rerouted here: say so, or
            # the shopkeeper sees room the screen denies.
            return _("Places kept"), _(
                "The last free places are kept for %(count)s rerouted parcel(s) expected "
                "today. Give this one back to the driver: it comes back on the next round.",
                count=extra["kept_for_reroutes"])
        case "site-at-capacity":
            # what was decided for it at once, else where the nearest room is
            return _("Shop full"), (_decided(extra.get("reroute"))
                                    or _shop_full(extra.get("nearest_site")))
        case "wrong-site":
            return _("Another shop's parcel"), _(
                "This parcel is addressed to %(site)s: give it back to the driver.",
                # The shop's name, as on the parcel's label; its code means nothing at a counter.
                site=extra.get("destination_name") or extra.get("destination", "?"))
        case "ambiguous-tracking-number" if extra.get("carriers"):
            return _("Which carrier?"), _(
                "Parcels of several carriers here carry this number: choose the carrier "
                "printed on the label.")
        case "ambiguous-tracking-number":
            return _("Another shop's parcel"), _(
                "Parcels of several carriers carry this number, none for this shop: give it "
                "back to the driver.")
        case "wrong-pickup-code":
            left = extra.get("attempts_left")
            if left is None:
                return _("Wrong code"), _("No parcel here has this code.")
            return _("Wrong code"), _(
                "Wrong code. %(left)s attempt(s) left before the code is locked.", left=left)
        case "pickup-code-locked":
            return _("Code locked"), _(
                "Too many wrong codes: check an identity document and record it to hand the "
                "parcel over.")
        case "code-needs-tracking-or-name":
            return _("Whose parcel?"), _(
                "Wrong codes were typed here: from now on a code comes with the recipient's "
                "name or the tracking number.")
        case "identity-check-required":
            return _("Identity check needed"), _(
                "This code belongs to a proxy: check their identity document and record it.")
        case "invalid-transition":
            state = extra.get("state")
            if state:
                from relay_ops.web.pages.i18n import state_label

                return _("Not possible now"), _(
                    "This parcel is %(state)s: it cannot do that.", state=state_label(state))
            return _("Not possible now"), err.detail
        case "extension-refused":
            return _("No extension"), _(
                "The holding period was already extended once, or the deadline has passed.")
        case "not-found":
            return _("Not found"), _("There is nothing here, or it is not yours to see.")
        case "link-expired":
            return _("This link has expired"), _(
                "The parcel has been collected or returned, so this tracking link no longer "
                "works.")
        case "too-many-attempts":
            wait = extra.get("retry_after_s")
            if wait:  # sign-in waits grow from a second to 15 minutes: say how long
                return _("Too many attempts"), _(
                    "Too many wrong attempts: wait %(s)s s before trying again.", s=wait)
            return _("Too many attempts"), _(
                "Too many wrong attempts: wait a few minutes before trying again.")
        case "parcel-does-not-fit":
            return _("No door for this parcel"), _(
                "No free compartment of this locker takes this parcel: the carrier keeps it.")
        case "session-closed":
            return _("Drop-off over"), _("This drop-off has ended: scan the parcel again.")
        case "label-not-collected-here":
            return _("No carrier for this label"), _(
                "No carrier that collects at this shop takes this label: the sender posts it "
                "elsewhere or uses another carrier's label.")
        case "carrier-choice-needed":
            return _("Which carrier?"), _(
                "Several carriers collect this label here: choose the one printed on it.")
        case "service-not-offered":
            return _("Service not offered here"), _service_not_offered(extra.get("service"))
        case "unauthenticated":
            return _("Sign-in failed"), _("Wrong username or password.")
        case "forbidden":
            return _("Not allowed"), _("Your account cannot do this.")
        case _:
            return _("Refused"), err.detail


def _decided(reroute: dict[str, Any] | None) -> str | None:
    """What the driver does with a parcel refused and decided at once (``reroute``, the
    manifest's shape), or None when nothing was decided for it."""
    if not reroute:
        return None
    status = reroute.get("status")
    chosen = next((o for o in reroute.get("options", []) if o["site"] == reroute.get("site")),
                  None)
    if status in ("automatic", "overflow-storage") and chosen is not None:
        return _("No shelf has room for this parcel. Give it back to the driver: it goes to "
                 "%(name)s, %(address)s, %(city)s (%(km)s km) today; its recipient is told.",
                 name=chosen["name"], address=chosen["address"], city=chosen["city"],
                 km=chosen["distance_km"])
    if status == "hold-at-depot":
        return _("No shelf has room for this parcel. Give it back to the driver: the carrier "
                 "keeps it at its depot and brings it back on %(day)s; its recipient is told.",
                 day=reroute["until"])
    if status == "home-delivery":
        return _("No shelf has room for this parcel. Give it back to the driver: the carrier "
                 "delivers it at its recipient's home; its recipient is told.")
    return None


def _shop_full(nearest: dict[str, Any] | None) -> str:
    if not nearest:
        return _("No shelf has room for this parcel, and no other site nearby has room.")
    return _(
        "No shelf has room for this parcel. Nearest site with room: %(name)s, %(address)s, "
        "%(city)s (%(km)s km).",
        name=nearest["name"], address=nearest["address"], city=nearest["city"],
        km=nearest["distance_km"],
    )


def _service_not_offered(service: str | None) -> str:
    match service:
        case "send":
            return _("This shop does not declare sending among its services: it takes no "
                     "parcel to send until its operator or shopkeeper adds it.")
        case "cold":
            return _("This shop does not declare a cold place among its services: it takes "
                     "no order to keep cold.")
        case "home_delivery":
            return _("This shop does not declare home delivery among its services.")
    return _("This site does not offer this service.")
