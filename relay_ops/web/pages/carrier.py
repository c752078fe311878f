"""Carriers' pages: their manifests with the reconciliation, and a manifest upload as CSV.

There are no carrier user accounts yet: carriers' staff sign in with the carrier's API key,
which opens a short-lived session (see ``accounts.open_carrier_session``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from flask import jsonify, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from relay_ops.domain.errors import DomainError
from relay_ops.services import manifests, sites
from relay_ops.services.principal import Principal, Role
from relay_ops.web.pages import bp
from relay_ops.web.pages.i18n import parse_day
from relay_ops.web.pages.refusals import explain
from relay_ops.web.pages.security import ctx, requires

CARRIER_ROLES = (Role.CARRIER, Role.OPERATOR)
COLUMNS = ("tracking_number", "site", "recipient_name", "recipient_phone", "recipient_email",
           "size_class")
REQUIRED = ("tracking_number", "site")
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
MAX_PAGE = 1_000_000  # beyond this the offset overflows SQLite integers


@bp.get("/carrier")
@requires(*CARRIER_ROLES)
def carrier_home(principal: Principal) -> str:
    page = min(max(1, request.args.get("page", 1, type=int) or 1), MAX_PAGE)
    listing = manifests.list_manifests(ctx(), principal, page, 50)
    return render_template("pages/manifests.html", listing=listing)


@bp.get("/carrier/manifests/<int:manifest_id>")
@requires(*CARRIER_ROLES)
def manifest_detail(principal: Principal, manifest_id: int) -> str:
    manifest = manifests.get_manifest(ctx(), principal, manifest_id)
    return render_template(
        "pages/manifest.html", manifest=manifest, site_names=_site_names(principal)
    )


def _site_names(principal: Principal) -> dict[str, str]:
    """Site code → name: people read "Tabac-Presse du Bourg", not "bourg"."""
    return {s["code"]: s["name"] for s in sites.list_sites(ctx(), principal)}


@dataclass
class ParsedCsv:
    parcels: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the CSV line of each parcel
    errors: list[str] = field(default_factory=list)


def parse_csv(raw: bytes) -> ParsedCsv:
    """CSV → the manifest's parcels. Only the file's shape is checked here; each parcel's
    content is judged by ``manifests.announce``, which rejects it with a reason."""
    result = ParsedCsv()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        result.errors.append(_("The file is not UTF-8 text. Export the CSV as UTF-8."))
        return result
    dialect = _dialect(text)
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        result.errors.append(_("Missing column(s): %(columns)s. Expected: %(expected)s.",
                               columns=", ".join(missing), expected=", ".join(COLUMNS)))
        return result
    reader.fieldnames = header
    for row in reader:
        if not any((v or "").strip() for k, v in row.items() if k is not None):
            continue  # blank line
        if None in row:
            result.errors.append(_("Line %(line)s has more fields than the header.",
                                   line=reader.line_num))
            continue
        result.parcels.append(_parcel(row))
        result.lines.append(reader.line_num)
    if not result.parcels and not result.errors:
        result.errors.append(_("The file has no parcel lines."))
    return result


def _dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(text.splitlines()[0] if text else "", delimiters=",;\t")
    except csv.Error:
        return csv.excel


def _parcel(row: dict[str, str]) -> dict[str, Any]:
    def value(key: str) -> str | None:
        return (row.get(key) or "").strip() or None

    item: dict[str, Any] = {
        "tracking_number": value("tracking_number") or "",
        "site": value("site") or "",
        "recipient": {k: v for k, v in (
            ("name", value("recipient_name")), ("phone", value("recipient_phone")),
            ("email", value("recipient_email")),
        ) if v},
    }
    if value("size_class"):
        item["size_class"] = value("size_class")
    return item


@bp.route("/carrier/manifests/new", methods=["GET", "POST"])
@requires(Role.CARRIER)
def manifest_upload(principal: Principal) -> Response | tuple[str, int] | str:
    if request.method == "GET":
        return render_template("pages/upload.html", columns=COLUMNS)
    reference = request.form.get("reference", "").strip()
    upload = request.files.get("file")
    raw = upload.read(MAX_UPLOAD_BYTES + 1) if upload else b""
    errors: list[str] = []
    if not reference:
        errors.append(_("Give the round's reference."))
    if not raw:
        errors.append(_("Choose a CSV file."))
    elif len(raw) > MAX_UPLOAD_BYTES:
        errors.append(_("The file is larger than 2 MB: split the round."))
    expected = request.form.get("expected_date", "").strip()
    try:
        expected_day = parse_day(expected) if expected else None
    except ValueError:
        errors.append(_("Give the delivery day as day/month/year, for example 24/12/2026."))
    parsed = parse_csv(raw) if raw and not errors else ParsedCsv()
    errors += parsed.errors
    if errors:
        return _upload_answer(422, errors=errors)
    body: dict[str, Any] = {"reference": reference, "parcels": parsed.parcels}
    if expected_day:
        body["expected_date"] = expected_day.isoformat()
    try:
        status, answer = manifests.announce(ctx(), principal, body)
    except DomainError as err:
        return _upload_answer(err.status, errors=[explain(err)[1]])
    report = [dict(r, line=parsed.lines[r["index"]]) for r in answer["parcels"]]
    return _upload_answer(status, answer=answer, report=report, replayed=status == 200)


def _upload_answer(status: int, **context: Any) -> Response | tuple[str, int]:
    """The report as a page, or as an HTML fragment for the page's upload script."""
    if "answer" in context:
        manifest_id = context["answer"]["id"]
        context["manifest_url"] = url_for("pages.manifest_detail", manifest_id=manifest_id)
    fragment = render_template("pages/_upload_report.html", **context)
    if request.accept_mimetypes.best == "application/json":
        response = jsonify({"html": fragment, "ok": status < 400})
        response.status_code = status
        return response
    return render_template("pages/upload.html", columns=COLUMNS, report_html=fragment), status
