"""The JSON API under ``/api/v1``: thin views that turn HTTP into service calls."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, json, request
from pydantic import BaseModel, ValidationError

from relay_ops.domain.errors import Unauthenticated, ValidationFailed
from relay_ops.services import api_tokens, home_delivery, idempotency, resident
from relay_ops.services.context import Ctx
from relay_ops.services.principal import PUBLIC, Principal, Role
from relay_ops.web.api.openapi import REGISTRY, EndpointDoc, Link
from relay_ops.web.inputs import DEFAULT_BODY_LIMIT, RequestInvalid, body_limit

PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=PREFIX)


def ctx() -> Ctx:
    return current_app.extensions["relay_ops"]


def endpoint(
    rule: str,
    method: str = "GET",
    *,
    summary: str,
    tag: str,
    roles: tuple[Role, ...] = (),
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    status: int = 200,
    idempotent: bool = False,
    errors: tuple[int, ...] = (),
    description: str = "",
    max_body: str = DEFAULT_BODY_LIMIT,
    extra_responses: dict[int, str] | None = None,
    media_type: str = "application/json",
    response: type[BaseModel] | None = None,
    links: dict[str, Link] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare an API operation: route, who may call it, inputs, and its documentation.

    ``roles`` empty means public; ``(Role.RESIDENT,)`` means the ``token`` path parameter is a
    signed tracking link. Views receive ``principal`` and, when declared, ``body``/``query``
    as validated models, and return data (or ``(status, data)``). ``max_body`` names the
    configuration key of the largest body accepted (``web.inputs``); ``extra_responses`` are
    successful answers other than ``status`` (e.g. a replay's 200); ``media_type`` is the
    success's (a QR code is an image); ``response`` the success's shape (``web.api.responses``),
    for the document only: answers are not validated at run time. ``links`` lead from the
    success to the operations a client calls next on what it got (OpenAPI links).
    """
    REGISTRY.append(EndpointDoc(
        rule=rule, method=method, summary=summary, tag=tag, roles=roles, body=body, query=query,
        status=status, idempotent=idempotent, description=description, errors=errors,
        extra_responses=extra_responses or {}, max_body=max_body, media_type=media_type,
        response=response, links=links or {},
    ))

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(**kwargs: Any) -> Response:
            principal = _principal(roles, kwargs)
            if body is not None:
                kwargs["body"] = _parse_body(body)
            if query is not None:
                kwargs["query"] = _parse(query, _query_args())
            if idempotent and request.headers.get("Idempotency-Key"):
                return _idempotent(principal, lambda: view(principal=principal, **kwargs), status)
            return _respond(view(principal=principal, **kwargs), status)

        bp.add_url_rule(rule, endpoint=view.__name__, view_func=body_limit(max_body)(wrapper),
                        methods=[method])
        return view

    return decorate


def _principal(roles: tuple[Role, ...], kwargs: dict[str, Any]) -> Principal:
    if not roles:
        return _optional_bearer() or PUBLIC
    if Role.RESIDENT in roles:
        return resident.principal_for(ctx(), kwargs.pop("token"))
    if Role.COURIER in roles:
        return home_delivery.courier_principal(ctx(), kwargs.pop("courier_token"))
    principal = _optional_bearer()
    if principal is None:
        raise Unauthenticated("send 'Authorization: Bearer <token>'")
    return principal


def _optional_bearer() -> Principal | None:
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("use 'Authorization: Bearer <token>'")
    return api_tokens.authenticate(ctx(), token)


def _query_args() -> dict[str, Any]:
    return {k: v for k, v in request.args.items()}


def _parse_body(model: type[BaseModel]) -> BaseModel:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationFailed("the body must be a JSON object (Content-Type: application/json)")
    # Strict JSON types, as the document states them: `0` is not a boolean, `"5"` not a number.
    # But `3.0` is an integer, as JSON Schema counts them (a number whose fraction is zero):
    # such numbers are given to the model as integers, the only loosening strict mode needs.
    if _has_integral_float(data):
        return _parse(model, json.dumps(_integral_floats_as_ints(data)).encode(), strict=True)
    return _parse(model, request.get_data(), strict=True)


def _has_integral_float(value: Any) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(_has_integral_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_integral_float(v) for v in value)
    return False


def _integral_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral_floats_as_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(v) for v in value]
    return value


def _parse(model: type[BaseModel], data: dict[str, Any] | bytes, strict: bool = False
           ) -> BaseModel:
    """Query strings are text, so their values are converted (lax); bodies are JSON (strict)."""
    try:
        if isinstance(data, bytes):
            return model.model_validate_json(data, strict=strict)
        return model.model_validate(data, strict=strict)
    except ValidationError as err:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in err.errors(include_url=False, include_context=False, include_input=False)
        ]
        summary = "; ".join(f"{p['field'] or 'body'}: {p['message']}" for p in problems)
        raise RequestInvalid(summary, errors=problems) from None


def _respond(result: Any, default_status: int) -> Response:
    if isinstance(result, Response):
        return result
    status, data = result if isinstance(result, tuple) else (default_status, result)
    if status == 204:
        return Response(status=204)
    return Response(json.dumps(data), status=status, mimetype="application/json")


def _idempotent(principal: Principal, run: Callable[[], Any], default_status: int) -> Response:
    key = request.headers["Idempotency-Key"]
    if len(key) > idempotency.MAX_KEY_LENGTH:
        raise ValidationFailed(f"Idempotency-Key has at most {idempotency.MAX_KEY_LENGTH} chars")
    digest = hashlib.sha256(
        f"{request.method} {request.path}\n".encode() + request.get_data()
    ).hexdigest()
    stored = idempotency.lookup(ctx(), principal.key, key, digest)
    if stored is not None:
        response = _respond((stored.status, stored.body), stored.status)
        response.headers["Idempotent-Replayed"] = "true"
        return response
    result = run()
    status, data = result if isinstance(result, tuple) else (default_status, result)
    idempotency.store(ctx(), principal.key, key, digest, status, data)
    return _respond((status, data), status)


def client_address() -> str:
    """The caller's address, as the WSGI server (or a trusted proxy, see TRUSTED_PROXIES)
    reports it: what sign-in throttling keys on."""
    return request.remote_addr or "unknown"


def pagination(page: int, per_page: int | None) -> tuple[int, int]:
    config = current_app.config
    size = per_page or config["DEFAULT_PAGE_SIZE"]
    return page, min(size, config["MAX_PAGE_SIZE"])


# Routes register themselves on ``bp`` when imported.
from relay_ops.web.api import (  # noqa: E402, F401
    home_delivery_routes,
    jobs_routes,
    no_room_routes,
    outbound_routes,
    producer_routes,
    routes,
    season_routes,
    stats_routes,
)
