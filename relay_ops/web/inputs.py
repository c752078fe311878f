"""What the web layer accepts before any view runs, for the API and the pages alike.

One rule each, applied to every request:

* ids in paths are row ids: digits within the database's INTEGER range, else not found (404),
  so a huge number never reaches a query; days in paths are calendar days, else not found;
* no string anywhere (path, query, form, JSON) holds a NUL character: PostgreSQL cannot store
  or even compare one, so it is refused as invalid input (422) before a query sees it;
* bodies are bounded per route (413 before a byte is read, when the length is announced), a
  small default and larger limits where a route names one (manifest uploads);
* JSON bodies nest at most ``MAX_JSON_DEPTH`` levels (deep nesting exhausts recursion in the
  parser and in validation; no schema here needs more than a handful of levels).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from typing import Any, TypeVar

from flask import Flask, current_app, request
from werkzeug.exceptions import NotFound, RequestEntityTooLarge
from werkzeug.routing import BaseConverter

from relay_ops.domain.errors import DomainError

MAX_ID = 2**31 - 1  # ids are INTEGER columns: larger numbers name no row, on any database
MAX_JSON_DEPTH = 32
NUL = "\x00"
# The same rule in the OpenAPI document, on every free-text string (ECMA-262 and Python agree).
NO_NUL_PATTERN = "^[^\\x00]*$"

# Per-route body limits name a configuration key (defaults in relay_ops/settings.py), so
# operators can tune them.
DEFAULT_BODY_LIMIT = "MAX_BODY_BYTES"
MANIFEST_BODY_LIMIT = "MAX_MANIFEST_BYTES"

View = TypeVar("View", bound=Callable[..., Any])


class RequestInvalid(DomainError):
    slug = "invalid-request"
    title = "The request body or query is not valid"
    status = 422


class IdConverter(BaseConverter):
    """Row ids: 1 to ``MAX_ID``. Registered as ``id`` and as the app's ``int``, so a page's
    ``<int:...>`` is bounded the same way as the API's ``<id:...>``.

    Out of range is :class:`NotFound` raised here, not werkzeug's ``ValidationError``: that
    one makes the router answer 405 when the same path has a rule for another method."""

    regex = r"[0-9]+"  # ASCII: Python's \d also matches other scripts' digits
    part_isolating = True

    def to_python(self, value: str) -> int:
        # The length first: int() refuses strings of more than 4,300 digits (ValueError).
        number = int(value) if len(value) <= len(str(MAX_ID)) else MAX_ID + 1
        if not 1 <= number <= MAX_ID:
            raise NotFound(f"no object has the id {value[:20]}")
        return number

    def to_url(self, value: int) -> str:
        return str(int(value))


class DateConverter(BaseConverter):
    """A calendar day in a path (``YYYY-MM-DD``); a day that does not exist is not found."""

    regex = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    part_isolating = True

    def to_python(self, value: str) -> date:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise NotFound(f"{value} is not a day of the calendar") from None

    def to_url(self, value: date) -> str:
        return value.isoformat()


def body_limit(config_key: str) -> Callable[[View], View]:
    """Let a view accept bodies up to ``config[config_key]`` bytes instead of the default."""

    def mark(view: View) -> View:
        view.body_limit = config_key  # type: ignore[attr-defined]
        return view

    return mark


def _limit_body() -> None:
    view = current_app.view_functions.get(request.endpoint or "")
    limit = int(current_app.config[getattr(view, "body_limit", DEFAULT_BODY_LIMIT)])
    too_large = RequestEntityTooLarge(f"this operation takes bodies of at most {limit} bytes")
    if request.content_length is not None:
        if request.content_length > limit:
            raise too_large  # from the announced length: nothing of the body is read
        request.max_content_length = limit
    elif request.environ.get("wsgi.input_terminated"):
        # A streamed (chunked) body: werkzeug stops reading at the limit without saying so,
        # so one byte more is read here to tell a body of exactly the limit from a longer one.
        request.max_content_length = limit + 1
        if len(request.get_data(cache=True)) > limit:
            raise too_large


def _strings(pairs: Iterable[tuple[str, str]]) -> Iterable[str]:
    for key, value in pairs:
        yield key
        yield value


def _refuse_bad_strings_and_depth() -> None:
    """NUL anywhere, and JSON nested too deep, refused before a view parses anything."""
    if NUL in request.path:
        raise RequestInvalid("the path contains a NUL character")
    if any(NUL in s for s in _strings(request.args.items(multi=True))):
        raise RequestInvalid("the query contains a NUL character")
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data") and any(
        NUL in s for s in _strings(request.form.items(multi=True))
    ):
        raise RequestInvalid("the form contains a NUL character")
    if request.is_json:
        try:  # parsed once: views get the cached result
            data = request.get_json(silent=True)
        except RecursionError:  # nested beyond the parser's own stack
            raise RequestInvalid(f"the body nests deeper than {MAX_JSON_DEPTH} levels") from None
        check_json(data)


def check_json(data: Any) -> Any:
    """``data`` itself, once no level is deeper than ``MAX_JSON_DEPTH`` and no string (key
    or value) holds a NUL; iterative, so a hostile document cannot exhaust the stack."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if NUL in value:
                raise RequestInvalid("the body contains a NUL character")
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise RequestInvalid(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                stack.append((key, depth))
                stack.append((item, depth + 1))
    return data


def init_app(app: Flask) -> None:
    """Before any blueprint registers its rules: converters are looked up as rules are added."""
    app.url_map.converters.update(id=IdConverter, int=IdConverter, date=DateConverter)
    app.before_request(_limit_body)
    app.before_request(_refuse_bad_strings_and_depth)
