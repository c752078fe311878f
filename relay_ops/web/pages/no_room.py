"""The operator's no-room policies on the dashboard (docs/overflow.md): what happens to a
parcel when no site within reach has room, per carrier and territory. The rules and their
checks are the service's (`services/no_room_policies.py`), as for the API; the form only
offers what the rules allow (one territory, steps in order) and says what is missing."""

from __future__ import annotations

from typing import Any

from flask import Flask, flash, redirect, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from relay_ops.domain import no_room as rules
from relay_ops.domain.errors import ValidationFailed
from relay_ops.services import accounts, no_room_policies, site_search
from relay_ops.services.principal import Principal, Role
from relay_ops.web.pages import bp
from relay_ops.web.pages.dashboard import Panel, register_panel
from relay_ops.web.pages.security import ctx, requires

TEMPLATE = "pages/_no_room_policies.html"
STEP_FIELDS = ("step1", "step2", "step3")
EVERYWHERE = ""


def init_app(app: Flask) -> None:
    register_panel(app, Panel("no_room_policies", TEMPLATE, load=load))


def load(principal: Principal) -> dict[str, Any]:
    return {
        "policies": no_room_policies.list_policies(ctx(), principal),
        "carriers": accounts.list_carriers(ctx(), principal),
        "sites": [s for s in site_search.list_sites(ctx(), principal) if s["kind"] != "storage"],
        "areas": rules.AREAS,
        "steps": rules.STEPS,
        "step_fields": STEP_FIELDS,
        "size_classes": ctx().settings.size_classes,
    }


@bp.post("/ops/no-room-policies")
@requires(Role.OPERATOR)
def set_no_room_policy(principal: Principal) -> Response:
    steps = _steps()
    size_classes = request.form.getlist("home_size_classes")
    if size_classes and rules.HOME not in steps:
        raise ValidationFailed(_("Size classes for home delivery need the home delivery step."))
    created, _view = no_room_policies.set_policy(ctx(), principal, {
        "carrier": request.form.get("carrier") or None, **_territory(),
        "steps": steps, "home_size_classes": size_classes})
    flash(_("No-room policy recorded.") if created else _("No-room policy replaced."), "ok")
    return redirect(url_for("pages.dashboard") + "#no-room-policies", 303)


@bp.post("/ops/no-room-policies/<int:policy_id>/delete")
@requires(Role.OPERATOR)
def delete_no_room_policy(principal: Principal, policy_id: int) -> Response:
    no_room_policies.delete_policy(ctx(), principal, policy_id)
    flash(_("No-room policy deleted."), "ok")
    return redirect(url_for("pages.dashboard") + "#no-room-policies", 303)


def _steps() -> list[str]:
    """The steps in the order chosen; a step chosen twice counts at its first place."""
    chosen = [request.form.get(field, "") for field in STEP_FIELDS]
    steps = list(dict.fromkeys(step for step in chosen if step))
    if not steps:
        raise ValidationFailed(_("Choose at least one step."))
    return steps


def _territory() -> dict[str, str | None]:
    """One select names the territory: everywhere, an area (`area:town`) or a site
    (`site:CODE`), so a policy can never name both."""
    value = request.form.get("territory", EVERYWHERE)
    kind, _sep, name = value.partition(":")
    if value == EVERYWHERE:
        return {"site": None, "area": None}
    if kind in ("area", "site") and name:
        return {"site": name if kind == "site" else None, "area": name if kind == "area" else None}
    raise ValidationFailed(_("Choose a territory from the list."))
