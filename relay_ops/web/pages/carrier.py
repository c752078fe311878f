"""Carriers' pages: their manifests with the reconciliation, and a manifest upload as CSV.

There are no carrier user accounts yet: carriers' staff sign in with the carrier's API key,
which opens a short-lived session (see ``api_tokens.open_carrier_session``).
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
from relay_ops.services import manifests, site_search
from relay_ops.services.principal import Principal, Role
from relay_ops.web.inputs import MANIFEST_BODY_LIMIT, body_limit
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
    for rejected in manifest["rejected"]:
        rejected["why"] = line_reason(rejected, None)
    return render_template(
        "pages/manifest.html", manifest=manifest, site_names=_site_names(principal)
    )


def _site_names(principal: Principal) -> dict[str, str]:
    """Site code → name: people read "Tabac-Presse du Bourg", not "bourg"."""
    return {s["code"]: s["name"] for s in site_search.list_sites(ctx(), principal)}


@dataclass
class ParsedCsv:
    parcels: list[dict[str, Any]] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # each parcel's row, as a spreadsheet shows it
    errors: list[str] = field(default_factory=list)


def parse_csv(raw: bytes) -> ParsedCsv:
    """CSV → the manifest's parcels. Only the file's shape is checked here; each parcel's
    content is judged by ``manifests.announce``, which rejects it with a reason.

    Rows are numbered as a spreadsheet numbers them: the header is row 1 and every record
    (a blank one too) is one row, even when a quoted cell spans several lines of the file
    (the file's line numbers would then run ahead of the rows people see)."""
    result = ParsedCsv()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        result.errors.append(_("The file is not UTF-8 text. Export the CSV as UTF-8."))
        return result
    records = csv.reader(io.StringIO(text, newline=""), dialect=_dialect(text))
    header = [h.strip() for h in next(records, [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        result.errors.append(_("Missing column(s): %(columns)s. Expected: %(expected)s.",
                               columns=", ".join(missing), expected=", ".join(COLUMNS)))
        return result
    for row, record in enumerate(records, start=2):
        if not any(cell.strip() for cell in record):
            continue  # a blank row
        if len(record) > len(header):
            result.errors.append(_("Row %(row)s has more fields than the header.", row=row))
            continue
        result.parcels.append(_parcel(dict(zip(header, record, strict=False))))
        result.rows.append(row)
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
@body_limit(MANIFEST_BODY_LIMIT)  # the file (MAX_UPLOAD_BYTES) and its form
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
        if err.slug == "conflict":
            return _upload_answer(err.status, errors=[_(
                "A manifest with the reference %(ref)s was already sent, with other content: "
                "it is kept as it was.", ref=reference)],
                hint=_resend_hint(reference), earlier_url=_earlier(err))
        return _upload_answer(err.status, errors=[explain(err)[1]])
    report = [
        dict(r, row=parsed.rows[r["index"]],
             why=line_reason(r, parsed.parcels[r["index"]], parsed.parcels[:r["index"]]))
        for r in answer["parcels"]
    ]
    hint = _resend_hint(reference) if answer["rejected"] else None
    return _upload_answer(status, answer=answer, report=report, replayed=status == 200,
                          hint=hint)


def _earlier(err: DomainError) -> str | None:
    manifest_id = err.extra.get("manifest_id")
    return url_for("pages.manifest_detail", manifest_id=manifest_id) if manifest_id else None


def _resend_hint(reference: str) -> str:
    """What to do with rejected lines: a manifest's reference names one sending, and the
    parcels it accepted are announced already."""
    return _("Correct the rejected lines in your spreadsheet, then send only those lines "
             "under a new reference (for example %(ref)s-2). The accepted parcels are "
             "announced already: sent again, they would be rejected as duplicates.",
             ref=reference)


def line_reason(result: dict[str, Any], item: dict[str, Any] | None,
                before: list[dict[str, Any]] | None = None) -> str:
    """Why a parcel of a manifest was rejected, in the page's language, saying which column
    to correct. ``item`` is what the file said (None when only the stored answer is known);
    ``before`` the file's earlier parcels. The service's English detail is the fallback."""
    item = item or {}
    number = str(item.get("tracking_number") or result.get("tracking_number") or "")
    match result.get("reason"):
        case "invalid-tracking-number":
            return _("“%(value)s” is not a tracking number: correct the tracking_number "
                     "column (letters and digits as printed under the barcode).", value=number)
        case "duplicate-tracking-number" if before is not None and any(
                _same_number(p.get("tracking_number", ""), number) for p in before):
            return _("This tracking number is on an earlier row of this file too: keep one.")
        case "duplicate-tracking-number":
            return _("You already announced this tracking number, in an earlier manifest: "
                     "leave it out.")
        case "missing-recipient-contact":
            return _("No way to tell the recipient: fill recipient_phone or recipient_email.")
        case "invalid-size":
            return _("Unknown size: the size_class column takes %(sizes)s.",
                     sizes=", ".join(_size_classes()))
        case "unknown-site" if item.get("site"):
            return _("No relay point has the code “%(value)s”: correct the site column.",
                     value=item["site"])
        case "unknown-site":
            return _("No relay point has this code: correct the site column.")
        case "site-closed":
            return _("The relay point is closed on the delivery day: choose another day or "
                     "another relay point.")
        case "site-saturated":
            return _("The relay point is full and takes no new parcels: choose another relay "
                     "point.")
        case _:
            return str(result.get("detail") or result.get("reason") or "")


def _same_number(a: str, b: str) -> bool:
    return "".join(a.split()).upper() == "".join(b.split()).upper()


def _size_classes() -> list[str]:
    return list(ctx().settings.size_classes)


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
