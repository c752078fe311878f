"""French first, English available: the locale of a page and the formats it uses.

The locale is, in order: the language the visitor picked (kept in the session), the browser's
preferred language among those we have, French.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask import Flask, current_app, redirect, request, session
from flask_babel import Babel, format_date, format_datetime, format_decimal, format_time
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from relay_ops.web.pages import bp

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def select_locale() -> str:
    languages: list[str] = current_app.config["LANGUAGES"]
    chosen = session.get("lang")
    if chosen in languages:
        return str(chosen)
    return request.accept_languages.best_match(languages) or languages[0]


def init_app(app: Flask) -> None:
    Babel(
        app,
        locale_selector=select_locale,
        default_locale=app.config["LANGUAGES"][0],
        default_timezone=app.config["TIMEZONE"],
    )
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["day"] = day
    app.jinja_env.filters["decimal"] = format_decimal  # 1,8 in French, 1.8 in English
    app.jinja_env.filters["state"] = state_label
    app.jinja_env.filters["action"] = action_label
    app.jinja_env.filters["actor"] = actor_label
    app.jinja_env.filters["holding_rule"] = holding_rule_label
    app.jinja_env.filters["area"] = area_label
    app.jinja_env.globals["day_name"] = day_name
    app.jinja_env.globals["current_locale"] = select_locale


@bp.post("/lang/<code>")
def choose_language(code: str) -> Response:
    """Switch language and come back to the same page."""
    if code in current_app.config["LANGUAGES"]:
        session["lang"] = code
    back = request.form.get("next", "/")
    # Only a path on this site: an open redirect would let a link send staff anywhere.
    if not back.startswith("/") or back.startswith("//"):
        back = "/"
    return redirect(back, code=303)


def when(value: str | datetime | None, style: str = "medium") -> str:
    """An ISO timestamp from a service view, in the site's time zone and the page's language."""
    if not value:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if style == "full":
        # Babel's full style names the time zone at length; people need the day and the hour.
        return f"{format_date(moment, 'full')}, {format_time(moment, 'short')}"
    return str(format_datetime(moment, style))


def day(value: str | date | None, style: str = "full") -> str:
    if not value:
        return "—"
    parsed = date.fromisoformat(value) if isinstance(value, str) else value
    return str(format_date(parsed, style))


# Days typed on a page: day first, as people in France write them (24/12/2026), or ISO
# (2026-12-24, what a browser's own date picker used to send).
DAY_FORMATS = ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y-%m-%d")


def parse_day(text: str) -> date:
    """A day typed in a form; ValueError when it is not one.

    The pages use a text field with a day/month/year hint rather than ``type=date``: a
    browser draws that field in its own interface language (mm/dd/yyyy on an English
    browser), whatever the page's language."""
    text = text.strip()
    for pattern in DAY_FORMATS:
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise ValueError(f"not a day: {text!r}")


def day_name(key: str) -> str:
    names: dict[str, Any] = {
        "mon": _("Monday"), "tue": _("Tuesday"), "wed": _("Wednesday"), "thu": _("Thursday"),
        "fri": _("Friday"), "sat": _("Saturday"), "sun": _("Sunday"),
    }
    return str(names.get(key, key))


def state_label(state: str) -> str:
    labels = {
        "announced": _("announced"),
        "ready_for_pickup": _("ready for pickup"),
        "picked_up": _("picked up"),
        "expired": _("expired"),
        "returned": _("returned to carrier"),
        "cancelled": _("cancelled"),
        "missing": _("missing"),
        "damaged": _("damaged"),
        "dropped_off": _("dropped off"),
        "awaiting_collection": _("awaiting collection"),
        "collected": _("collected"),
        "refused": _("refused by the carrier"),
        "lost": _("lost"),
        "deposited": _("deposited"),
        "out_for_delivery": _("out for home delivery"),
        "delivered": _("delivered home"),
        "home_by_carrier": _("delivered home by the carrier (no room)"),
    }
    return labels.get(state, state)


def action_label(action: str) -> str:
    """What an event of a parcel's history did, in words (the stored name is a code)."""
    labels = {
        "announce": _("announced by the carrier"),
        "registered_unannounced": _("registered without announcement"),
        "reconciled": _("matched with its announcement"),
        "check_in": _("checked in"),
        "check_in_refused": _("check-in refused (no room)"),
        "pick_up": _("picked up"),
        "wrong_code": _("wrong code typed"),
        "proxy_named": _("proxy named"),
        "extend": _("holding period extended"),
        "deadline_extended": _("deadline moved"),
        "expire": _("holding period over"),
        "collect": _("given back to the carrier"),
        "declare_missing": _("declared missing"),
        "declare_damaged": _("declared damaged"),
        "cancel": _("cancelled"),
        "reroute": _("sent to another site"),
        "reroute_refused": _("other site refused"),
        "personal_data_purged": _("personal data deleted"),
        "drop_off": _("dropped off for sending"),
        "accept_outbound": _("shelved for its carrier"),
        "collection_overdue": _("carrier late: not collected in time"),
        "home_delivery_requested": _("home delivery asked for"),
        "home_delivery_cancelled": _("home delivery cancelled"),
        "home_delivery_lapsed": _("home delivery not taken on its day"),
        "hand_to_courier": _("taken by the courier for home delivery"),
        "deliver": _("delivered home"),
        "return_to_shelf": _("back on the shelf (not delivered)"),
        "no_room_decision": _("no room within reach: decision taken"),
        "home_by_carrier": _("to be delivered home by the carrier"),
        "refuse": _("refused"),
        "hand_back": _("given back to its sender"),
        "take_back_overdue": _("left in its door: the operator is told"),
    }
    return labels.get(action, action.replace("_", " "))


def actor_label(kind: str) -> str:
    labels = {
        "operator": _("operator"), "shopkeeper": _("shopkeeper"), "carrier": _("carrier"),
        "resident": _("recipient"), "system": _("automatic"), "locker": _("locker"),
        "producer": _("producer"),
        "courier": _("courier"),
    }
    return labels.get(kind, kind)


def holding_rule_label(rule: str | None) -> str:
    """Why a parcel got the holding period it has (docs/forecast.md, "Adaptive holding")."""
    labels = {
        "standard": _("standard period"),
        "season": _("shorter period (season)"),
        "load": _("shorter period (shop full today)"),
        "forecast": _("shorter period (shop full in the coming days)"),
        "perishable": _("perishable order"),
    }
    return labels.get(rule or "standard", rule or "")


def area_label(area: str) -> str:
    """A site's territory (its `area`), as the no-room policies name it."""
    return {"town": _("town"), "countryside": _("countryside")}.get(area, area)
