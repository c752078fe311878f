"""Refusals as pages people can read, in their language; the scan station gets JSON."""

from __future__ import annotations

from flask import render_template
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from relay_ops.domain.errors import DomainError
from relay_ops.web.pages import bp
from relay_ops.web.pages.refusals import explain


def _page(status: int, title: str, message: str) -> tuple[str, int]:
    return render_template("pages/error.html", status=status, title=title, message=message), status


@bp.errorhandler(DomainError)
def domain_error(err: DomainError) -> tuple[str, int]:
    title, message = explain(err)
    return _page(err.status, title, message)


@bp.errorhandler(HTTPException)
def http_error(err: HTTPException) -> tuple[str, int]:
    status = err.code or 500
    if status == 400 and err.description == "csrf":
        return _page(400, _("This form has expired"),
                     _("Go back, reload the page and send the form again."))
    messages = {
        403: (_("Not allowed"), _("Your account cannot open this page.")),
        404: (_("Not found"), _("There is nothing here, or it is not yours to see.")),
        405: (_("Not allowed"), _("This page cannot be used that way.")),
        429: (_("Too many attempts"), _("Wait a minute before trying again.")),
    }
    title, message = messages.get(status, (err.name, err.description or err.name))
    response = _page(status, title, message)
    if status == 429:
        # Tell clients when to retry, as Flask-Limiter's own answer would.
        return response[0], status, {"Retry-After": "60"}  # type: ignore[return-value]
    return response


