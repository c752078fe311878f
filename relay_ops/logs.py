"""Logs: one line per record, as text (the default) or as JSON objects (``LOG_FORMAT =
"json``, for a log pipeline), each carrying the id of the request it was written in.

A request's id is the ``X-Request-Id`` its reverse proxy sent, when that is a short token,
else a new one. It goes back in the answer's ``X-Request-Id`` and in the problem of an
unexpected error (500), so the shopkeeper who saw the error, the proxy's access log and the
engineer reading these logs name the same request.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-Id"
# What a proxy's id looks like (a UUID, a hex or base64url token...): anything else a client
# sends (spaces, line breaks, a kilobyte) is replaced, never written into a log line.
_ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")
_G_KEY = "relay_ops_request_id"
FORMATS = ("text", "json")
TEXT_FORMAT = "%(levelname)s:%(name)s:%(message)s"  # logging.basicConfig's own


def configure(level: str, log_format: str) -> None:
    """The process's root logging: a handler on stderr in ``log_format``, each record given
    its request's id. Like ``logging.basicConfig``, it leaves a root logger that has handlers
    already (an embedding program's, pytest's) as it is."""
    if log_format not in FORMATS:
        raise ValueError(f"LOG_FORMAT is {log_format!r}: choose from {', '.join(FORMATS)}")
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter(TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(level)


def current_request_id() -> str | None:
    """The id of the request being served in this thread; None outside a request (a job
    runner's thread, the bridge)."""
    if not has_request_context():
        return None
    value: str | None = g.get(_G_KEY)
    return value


def init_app(app: Flask) -> None:
    # First of the before_request functions: an answer given early (a rate limit) has an id.
    app.before_request_funcs.setdefault(None, []).insert(0, _take_request_id)
    app.after_request(_send_request_id)


def _take_request_id() -> None:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    setattr(g, _G_KEY, given if _ACCEPTED_ID.fullmatch(given) else uuid.uuid4().hex)


def _send_request_id(response: Response) -> Response:
    request_id = current_request_id()
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


class RequestIdFilter(logging.Filter):
    """Gives every record the ``request_id`` attribute the formatters read."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


class TextFormatter(logging.Formatter):
    """``logging``'s usual line, with `` [request <id>]`` when written in a request."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id is None:
            return line
        first, newline, rest = line.partition("\n")  # after the message, before a traceback
        return f"{first} [request {request_id}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a traceback is a field, not more lines)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            # When the record was made: logging's own clock, not the product's (a log line
            # says when it was written, also under a test's fixed clock).
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        if record.exc_info and record.exc_info[1] is not None:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)
