"""The locker panel: a simulated locker as a person standing at it sees it.

Its screen, a keypad, a QR scanner, a carrier's drop-off and the doors, driving the real
simulated locker (a ``LockerAgent`` and its ``SimulatedBoard``) that the demo runs in this
process. A PIN typed here goes to the board's keypad, the agent sends it over MQTT, the bridge
asks the services, a command comes back and the board's door opens: the panel only shows the
board, so what it shows is what the protocol did. A carrier's deposit goes through the
services as the carrier's app would (a drop-off session, a scan), and its door opens the same
way.

Who may use it: operators. ``relay-ops demo`` sets ``LOCKER_PANEL_DEMO``, which opens the panel
without signing in and shows the resident's phone (the PIN and QR token of the parcels waiting
in the locker) so a newcomer can try it; production ignores that setting.

The demo attaches its simulated locker with :func:`attach_simulated_locker`; nothing here
imports the firmware package, which a web worker in production does not carry.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from flask import (
    Flask,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from relay_ops.domain.errors import DomainError
from relay_ops.services import (
    accounts,
    credentials,
    locker_dropoff,
    locker_tokens,
    locker_views,
    parcel_views,
    sites,
)
from relay_ops.services.principal import SYSTEM, Principal, Role
from relay_ops.web.pages import bp
from relay_ops.web.pages.refusals import explain
from relay_ops.web.pages.security import ctx, requires

SIMULATED_LOCKERS_KEY = "simulated_lockers"
SCREEN_LINES = 4


class Board(Protocol):
    """What the panel uses of ``firmware_bridge.agent.drivers.SimulatedBoard`` (or of
    ``firmware_bridge.agent.emulated.EmulatedKerongLocker``, `relay-ops demo --board
    kerong-emulated`)."""

    display: list[str]

    def compartments(self) -> list[int]: ...
    def door_state(self, n: int) -> str: ...
    def occupancy(self, n: int) -> bool | None: ...
    def close_door(self, n: int, *, occupied: bool | None = None) -> bool: ...
    def type_pin(self, digits: str) -> None: ...
    def scan(self, text: str) -> None: ...


class SimulatedLocker(Protocol):
    """A locker code with its board and agent (``firmware_bridge.embedded.EmbeddedLockers``)."""

    code: str
    board: Any  # a Board
    agent: Any  # a LockerAgent (None before it starts): the panel reads its ``online``


@dataclass
class PanelLocker:
    locker: SimulatedLocker
    # the drop-off session of each carrier at this locker (the carrier's app remembers it)
    carrier_sessions: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def attach_simulated_locker(app: Flask, locker: SimulatedLocker) -> None:
    app.extensions.setdefault(SIMULATED_LOCKERS_KEY, {})[locker.code] = PanelLocker(locker)


def detach_simulated_locker(app: Flask, code: str) -> None:
    app.extensions.get(SIMULATED_LOCKERS_KEY, {}).pop(code, None)


def simulated_codes(app: Flask) -> list[str]:
    return sorted(app.extensions.get(SIMULATED_LOCKERS_KEY, {}))


def demo_mode() -> bool:
    config = current_app.config
    return bool(config.get("LOCKER_PANEL_DEMO")) and config["ENV"] != "production"


def panel_access(view: Callable[..., Any]) -> Callable[..., Any]:
    """Operators; anyone (acting as the system) when the demo opened the panel."""
    guarded = requires(Role.OPERATOR)(view)

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if demo_mode():
            return view(SYSTEM, *args, **kwargs)
        return guarded(*args, **kwargs)

    return wrapper


def _panel(site_id: int) -> PanelLocker:
    """The simulated locker of this site, or a 404 (another site, or no simulated locker)."""
    for code, panel in current_app.extensions.get(SIMULATED_LOCKERS_KEY, {}).items():
        try:
            if sites.site_id_for_code(ctx(), code) == site_id:
                return panel
        except DomainError:
            continue
    abort(404)


# ---------------------------------------------------------------- what the locker shows


def _doors(board: Board) -> list[dict[str, Any]]:
    return [{"number": n, "open": board.door_state(n) == "open", "occupied": board.occupancy(n)}
            for n in board.compartments()]


def _online(locker: SimulatedLocker) -> bool:
    return locker.agent is not None and bool(locker.agent.online)


def _resident_phone(actor: Principal, site_id: int) -> list[dict[str, Any]]:
    """Demo only: what the residents of the parcels waiting here received (PIN, QR token)."""
    waiting = []
    for box in locker_views.locker_view(ctx(), actor, site_id)["compartments"]:
        if not box["parcel"]:
            continue
        parcel = parcel_views.get_parcel(ctx(), SYSTEM, box["parcel_id"])
        if parcel["state"] != "ready_for_pickup":
            continue
        with ctx().db.read() as session:
            live = credentials.live_credentials(session, parcel["id"])
            pins = [credentials.code_of(ctx(), c) for c in live if c.holder == "recipient"]
        waiting.append({"tracking_number": parcel["tracking_number"],
                        "compartment": box["number"], "pin": pins[0] if pins else None,
                        "qr": locker_tokens.qr_token(ctx(), parcel["id"])})
    return waiting


def _live(actor: Principal, site_id: int, panel: PanelLocker) -> dict[str, Any]:
    board: Board = panel.locker.board
    return {
        "online": _online(panel.locker),
        "screen": [screen_line(line) for line in board.display[-SCREEN_LINES:]],
        "doors": _doors(board),
        "carrier_session": bool(panel.carrier_sessions),
        "resident": _resident_phone(actor, site_id) if demo_mode() else None,
    }


# What the locker's firmware writes on its screen (English, like its protocol), said in the
# panel's language. A line not listed here is shown as the firmware wrote it.
_SCREEN = (
    (re.compile(r"compartment (\d+) opens: take (.+)"),
     lambda m: _("Door %(n)s opens: take %(parcel)s", n=m[1], parcel=m[2])),
    (re.compile(r"compartment (\d+) opens: put in (.+)"),
     lambda m: _("Door %(n)s opens: put %(parcel)s in", n=m[1], parcel=m[2])),
    (re.compile(r"compartment (\d+) opens"), lambda m: _("Door %(n)s opens", n=m[1])),
    (re.compile(r"compartment (\d+) failed to open"),
     lambda m: _("Door %(n)s did not open", n=m[1])),
    (re.compile(r"refused: (\w+)"), lambda m: _refused(m[1])),
    (re.compile(r"out of service"), lambda m: _("Out of service")),
    (re.compile(r"carrier: (\d+) to collect, (\d+) to deposit( \(scan each parcel\))?"),
     lambda m: _("Carrier: %(collect)s to collect, %(deposit)s to drop off",
                 collect=m[1], deposit=m[2]) + (" " + _("(scan each parcel)") if m[3] else "")),
    (re.compile(r"carrier: done"), lambda m: _("Carrier: done")),
    (re.compile(r"carrier: time is up, type the code again"),
     lambda m: _("Carrier: time is up, type the code again")),
)


def _refused(reason: str) -> str:
    reasons = {
        "unknown_code": _("unknown code"),
        "expired": _("this code has expired"),
        "revoked": _("this code is no longer valid"),
        "already_used": _("this code was already used"),
        "out_of_service": _("this door is out of service"),
        "unknown_compartment": _("no such door"),
        "no_credentials": _("the locker has no codes yet"),
        "no_reservation": _("no door is reserved for this parcel"),
        "locked_out": _("too many wrong codes, wait a moment"),
        "keypad_throttle": _("too many wrong codes, wait a moment"),
    }
    return _("Refused: %(reason)s", reason=reasons.get(reason, reason.replace("_", " ")))


def screen_line(line: str) -> str:
    for pattern, say in _SCREEN:
        match = pattern.fullmatch(line)
        if match:
            return str(say(match))
    return line


def _carriers(actor: Principal) -> list[dict[str, Any]]:
    return accounts.list_carriers(ctx(), actor)


@bp.get("/lockers/<int:site_id>/panel")
@panel_access
def locker_panel(actor: Principal, site_id: int) -> str:
    panel = _panel(site_id)
    return render_template(
        "pages/locker_panel.html", locker=sites.get_site(ctx(), SYSTEM, site_id), site_id=site_id,
        live=_live(actor, site_id, panel), carriers=_carriers(actor), demo=demo_mode(),
    )


@bp.get("/lockers/<int:site_id>/panel/state")
@panel_access
def locker_panel_state(actor: Principal, site_id: int) -> Response:
    panel = _panel(site_id)
    live = _live(actor, site_id, panel)
    html = render_template("pages/_locker_live.html", site_id=site_id, live=live, demo=demo_mode())
    link_html = render_template("pages/lockers/_link.html", live=live)
    return jsonify({**live, "html": html, "link_html": link_html})


# ---------------------------------------------------------------- what a person does


def _answer(site_id: int, ok: bool, message: str) -> Response:
    """JSON for the page's script; without script, back to the panel with the message."""
    if request.accept_mimetypes.best == "application/json":
        return jsonify({"ok": ok, "message": message})
    flash(message, "ok" if ok else "error")
    return redirect(url_for("pages.locker_panel", site_id=site_id), code=303)


def _not_listening(site_id: int) -> Response:
    return _answer(site_id, False, _("The locker is not running: nothing reads its keypad."))


@bp.post("/lockers/<int:site_id>/panel/keypad")
@panel_access
def locker_keypad(actor: Principal, site_id: int) -> Response:
    board: Board = _panel(site_id).locker.board
    digits = "".join(ch for ch in request.form.get("pin", "") if ch.isdigit())
    if not digits:
        return _answer(site_id, False, _("Type the code's digits, then OK."))
    try:
        board.type_pin(digits)
    except RuntimeError:
        return _not_listening(site_id)
    return _answer(site_id, True, _("Code typed on the keypad: watch the screen and the doors."))


@bp.post("/lockers/<int:site_id>/panel/scanner")
@panel_access
def locker_scanner(actor: Principal, site_id: int) -> Response:
    board: Board = _panel(site_id).locker.board
    token = request.form.get("token", "").strip()
    if not token:
        return _answer(site_id, False, _("Paste the text the QR code holds (it starts with RO1:)."))
    try:
        board.scan(token)
    except RuntimeError:
        return _not_listening(site_id)
    return _answer(site_id, True,
                   _("QR code presented to the scanner: watch the screen and the doors."))


@bp.post("/lockers/<int:site_id>/panel/doors/<int:number>/close")
@panel_access
def locker_close_door(actor: Principal, site_id: int, number: int) -> Response:
    board: Board = _panel(site_id).locker.board
    if number not in board.compartments():
        abort(404)
    occupied = request.form.get("occupied") == "1"
    if not board.close_door(number, occupied=occupied):
        return _answer(site_id, False, _("Door %(n)s does not close: something is in the way.",
                                         n=number))
    if occupied:
        return _answer(site_id, True, _("Door %(n)s closed with a parcel inside.", n=number))
    return _answer(site_id, True, _("Door %(n)s closed, empty.", n=number))


# ---------------------------------------------------------------- the carrier's app


def _carrier_of(actor: Principal, form_value: str) -> Principal | None:
    ids = {cast(int, c["id"]) for c in _carriers(actor)}
    chosen = int(form_value) if form_value.isdigit() else None
    return Principal(Role.CARRIER, carrier_id=chosen) if chosen in ids else None


def _deposit(panel: PanelLocker, van: Principal, site_id: int, number: str) -> dict[str, Any]:
    """Scan in the carrier's drop-off session at this locker, opening one when needed."""
    assert van.carrier_id is not None
    with panel.lock:
        session_id = panel.carrier_sessions.get(van.carrier_id)
        if session_id is not None:
            try:
                return locker_dropoff.deposit(ctx(), van, session_id, number)
            except locker_dropoff.SessionClosed:
                panel.carrier_sessions.pop(van.carrier_id, None)
        session_id = locker_dropoff.open_session(ctx(), van, site_id)["id"]
        panel.carrier_sessions[van.carrier_id] = session_id
        return locker_dropoff.deposit(ctx(), van, session_id, number)


@bp.post("/lockers/<int:site_id>/panel/carrier/deposit")
@panel_access
def locker_carrier_deposit(actor: Principal, site_id: int) -> Response:
    panel = _panel(site_id)
    van = _carrier_of(actor, request.form.get("carrier", ""))
    if van is None:
        return _answer(site_id, False, _("Choose the carrier."))
    number = request.form.get("tracking_number", "").strip()
    try:
        answer = _deposit(panel, van, site_id, number)
    except DomainError as err:
        title, message = explain(err)
        return _answer(site_id, False, f"{title}: {message}")
    if answer["status"] == "rerouted":
        to = answer["rerouted_to"]
        return _answer(site_id, False, _(
            "This locker is full: %(number)s now goes to %(name)s, %(address)s, %(city)s "
            "(%(km)s km). Take it there; the recipient has been told.",
            number=answer["tracking_number"], name=to["name"], address=to["address"],
            city=to["city"], km=to["distance_km"]))
    return _answer(site_id, True, _(
        "Door %(n)s opens for %(number)s: put the parcel in and close the door.",
        n=answer["compartment"], number=answer["tracking_number"]))


@bp.post("/lockers/<int:site_id>/panel/carrier/finish")
@panel_access
def locker_carrier_finish(actor: Principal, site_id: int) -> Response:
    panel = _panel(site_id)
    with panel.lock:
        ended = list(panel.carrier_sessions.items())
        panel.carrier_sessions.clear()
    for carrier_id, session_id in ended:
        locker_dropoff.close_session(ctx(), Principal(Role.CARRIER, carrier_id=carrier_id),
                                     session_id)
    return _answer(site_id, True, _("Drop-off finished: doors not used are free again."))
