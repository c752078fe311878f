"""The operator's live locker status, as a dashboard panel (``dashboard.register_panel``).

For each locker: online or offline and since when, last heard of, full, open alerts (faults,
doors left open, ...), compartments out of service, the last journal entry the bridge saw,
the credential version sent and held, and commands waiting. Everything comes from
``locker_views.locker_view``; nothing is invented when a locker never connected.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from relay_ops.services import locker_views, site_search
from relay_ops.services.principal import Principal
from relay_ops.web.pages.dashboard import Panel, register_panel
from relay_ops.web.pages.locker_panel import simulated_codes
from relay_ops.web.pages.security import ctx

TEMPLATE = "pages/lockers/_status.html"


def init_app(app: Flask) -> None:
    register_panel(app, Panel("lockers", TEMPLATE, load=load))


def load(principal: Principal) -> dict[str, Any]:
    simulated = set(simulated_codes(current_app))
    return {"lockers": [
        status(locker_views.locker_view(ctx(), principal, site["id"]), site["code"] in simulated)
        for site in site_search.list_sites(ctx(), principal, kind="locker")
    ]}


def status(view: dict[str, Any], simulated: bool) -> dict[str, Any]:
    link = view["link"]
    boxes = view["compartments"]
    return {
        "id": view["id"], "code": view["code"], "name": view["name"], "city": view["city"],
        "online": link["online"], "since": link["since"], "last_seen_at": link["last_seen_at"],
        "held": view.get("held", 0), "capacity": view.get("capacity", 0),
        "full": bool(view.get("capacity")) and view.get("free", 0) <= 0,
        "alerts": view.get("alerts", []),
        "out_of_service": [b for b in boxes if b["state"] == "out_of_service"],
        "last_journal_entry": link["last_journal_entry"],
        "credential_version_sent": link["credential_version_sent"],
        "credential_version_held": link["credential_version_held"],
        "commands_waiting": view["commands_waiting"],
        "simulated": simulated,
    }
