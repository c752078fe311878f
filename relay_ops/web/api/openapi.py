"""The endpoint registry: one decorator declares a route, its roles, its input schemas and its
documentation, so the OpenAPI document cannot drift from what the code accepts."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from relay_ops.services.principal import Role
from relay_ops.web.inputs import DEFAULT_BODY_LIMIT, MAX_ID, NO_NUL_PATTERN


@dataclass(frozen=True)
class Link:
    """An OpenAPI link from an operation's success to another operation (``"GET /sites/<id:
    site_id>"``), its path parameters taken from the answer (``$response.body#/id``) or the
    request (``$request.body#/day``): what a client does next with what it made, and the
    sequences schemathesis' stateful tests follow."""

    target: str
    parameters: dict[str, str]


@dataclass(frozen=True)
class EndpointDoc:
    rule: str
    method: str
    summary: str
    tag: str
    roles: tuple[Role, ...]
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    status: int
    idempotent: bool
    description: str = ""
    errors: tuple[int, ...] = ()
    extra_responses: dict[int, str] = field(default_factory=dict)
    max_body: str = DEFAULT_BODY_LIMIT
    media_type: str = "application/json"
    # The success answer's shape (web.api.responses), shown in the document; None: unstated.
    response: type[BaseModel] | None = None
    links: dict[str, Link] = field(default_factory=dict)


REGISTRY: list[EndpointDoc] = []
# A string whose values are the deployment's configuration (size classes, locker models): the
# input schema marks it with this key and a vocabulary's name, and the served document lists
# the configured values (``enum``), so that a value the document allows is one the services know.
VOCABULARY = "x-relayops-vocabulary"
ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
# What each URL converter (``web.inputs``) matches; a value outside it matches no route (404).
CONVERTER_SCHEMAS: dict[str, dict[str, Any]] = {
    "id": ID_SCHEMA,
    "int": ID_SCHEMA,
    "date": {"type": "string", "format": "date"},
    "": {"type": "string", "minLength": 1, "pattern": NO_NUL_PATTERN},
}


def operation_id(method: str, rule: str) -> str:
    return (f"{method.lower()}_{openapi_path(rule)}".replace("/", "_").replace("{", "")
            .replace("}", "").replace("-", "_").strip("_"))


def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def _path_params(rule: str) -> list[dict[str, Any]]:
    params = []
    for conv, name in re.findall(r"<(?:([a-z]+):)?([a-z_]+)>", rule):
        schema = dict(CONVERTER_SCHEMAS[conv])
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def _no_nul_strings(node: Any) -> Any:
    """Say in the document what ``web.inputs`` refuses everywhere: a NUL in a free-text
    string. Strings already bound by a pattern, a format or a list of values are left alone."""
    if isinstance(node, dict):
        node = {k: _no_nul_strings(v) for k, v in node.items()}
        if node.get("type") == "string" and not {"pattern", "format", "enum", "const",
                                                  VOCABULARY} & set(node):
            node["pattern"] = NO_NUL_PATTERN
        return node
    if isinstance(node, list):
        return [_no_nul_strings(v) for v in node]
    return node


def _query_params(model: type[BaseModel] | None) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = _no_nul_strings(model.model_json_schema())
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def _with_vocabularies(node: Any, vocabularies: dict[str, list[str]]) -> Any:
    if isinstance(node, dict):
        if VOCABULARY in node:
            kept = {k: _copied(v) for k, v in node.items()
                    if k not in (VOCABULARY, "minLength", "maxLength", "pattern")}
            return kept | {"type": "string", "enum": list(vocabularies[node[VOCABULARY]])}
        return {k: _with_vocabularies(v, vocabularies) for k, v in node.items()}
    if isinstance(node, list):
        return [_with_vocabularies(v, vocabularies) for v in node]
    return node


def build(prefix: str, title: str, version: str,
          vocabularies: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The document; ``vocabularies`` gives the configured values of each vocabulary (see
    ``VOCABULARY``), e.g. ``{"size_class": ["S", "M"], "locker_model": ["mini-6"]}``.

    A new tree each call (the caller may change it); the schemas it is made of are worked out
    once per process: pydantic takes ~0.1 s of CPU to describe the 160 models, for a
    document that changes only with the code (the registry) and the configuration."""
    plain = _plain_document(prefix, title, version, len(REGISTRY))
    if vocabularies is None:
        return _copied(plain)
    return _with_vocabularies(plain, vocabularies)


def _copied(node: Any) -> Any:
    """A copy of a JSON tree's containers (its strings and numbers cannot change)."""
    if isinstance(node, dict):
        return {k: _copied(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copied(v) for v in node]
    return node


@lru_cache(maxsize=8)
def _plain_document(prefix: str, title: str, version: str, registered: int) -> dict[str, Any]:
    """The document without the configured vocabularies; ``registered`` (the registry's size)
    is in the key so that an endpoint declared after a first build is never left out. Never
    handed out as it is: :func:`build` copies it."""
    del registered  # a key only
    paths: dict[str, Any] = {}
    components: dict[str, Any] = {"schemas": {}, "securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "A carrier's API key or a staff token from POST /auth/token"},
    }}
    for ep in REGISTRY:
        operation: dict[str, Any] = {
            "summary": ep.summary,
            "description": _describe(ep),
            "tags": [ep.tag],
            "operationId": operation_id(ep.method, ep.rule),
            "parameters": _path_params(ep.rule) + _query_params(ep.query),
            "responses": _responses(ep, _response_schema(ep.response, components)),
        }
        if ep.roles and not _by_link(ep):
            operation["security"] = [{"bearer": []}]
        if ep.idempotent:
            operation["parameters"].append({
                "name": "Idempotency-Key", "in": "header", "required": False,
                "schema": {"type": "string", "maxLength": 200},
                "description": "Same key and same body: the first answer is replayed.",
            })
        if ep.body is not None:
            schema = _no_nul_strings(
                ep.body.model_json_schema(ref_template="#/components/schemas/{model}"))
            for name, sub in schema.pop("$defs", {}).items():
                components["schemas"][name] = sub
            components["schemas"][ep.body.__name__] = schema
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {
                    "schema": {"$ref": f"#/components/schemas/{ep.body.__name__}"}}},
            }
        if ep.links:
            operation["responses"][str(ep.status)]["links"] = _links(ep)
        paths.setdefault(prefix + openapi_path(ep.rule), {})[ep.method.lower()] = operation
    components["schemas"]["Problem"] = PROBLEM_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "RelayOps API: relay shops, lockers, carriers and residents."},
        "paths": paths,
        "components": components,
    }


def _links(ep: EndpointDoc) -> dict[str, Any]:
    """The success's links; each names an operation of the registry and fills every one of
    its path parameters (a link to nothing, or a half-filled one, is a mistake of the
    declaration, refused here rather than served)."""
    declared = {(doc.method, doc.rule) for doc in REGISTRY}
    links = {}
    for name, link in ep.links.items():
        method, rule = link.target.split(" ", 1)
        if (method, rule) not in declared:
            raise ValueError(f"{ep.method} {ep.rule}: link {name!r} to no operation {link.target}")
        wanted = {p["name"] for p in _path_params(rule)}
        if set(link.parameters) != wanted:
            raise ValueError(f"{ep.method} {ep.rule}: link {name!r} fills "
                             f"{sorted(link.parameters)}, {link.target} takes {sorted(wanted)}")
        links[name] = {"operationId": operation_id(method, rule),
                       "parameters": dict(link.parameters)}
    return links


def _by_link(ep: EndpointDoc) -> bool:
    """Operations whose path carries the credential (a resident's tracking link, a home
    delivery courier's link) instead of a bearer token."""
    return Role.RESIDENT in ep.roles or Role.COURIER in ep.roles


def _describe(ep: EndpointDoc) -> str:
    roles = ", ".join(r.value for r in ep.roles) or "anyone"
    return f"{ep.description}\n\nRoles: {roles}.".strip()


def _error_codes(ep: EndpointDoc) -> set[int]:
    """Every refusal the server can give for this operation, from what it takes as input."""
    codes = set(ep.errors)
    if ep.body or ep.query or re.search(r"<[a-z_]+>", ep.rule):
        codes.add(422)  # schema violations; a NUL in any string (web.inputs)
    if ep.body:
        codes.add(413)  # the body is larger than the operation's limit
    if "<" in ep.rule:
        codes.add(404)  # a path value names nothing (or nothing of yours)
    if not _by_link(ep):
        codes.add(401)  # a malformed or unknown bearer token, even where none is required
        if ep.roles:
            codes.add(403)
    return codes


def _response_schema(model: type[BaseModel] | None, components: dict[str, Any]
                     ) -> dict[str, Any]:
    """The success answer's schema: a reference to ``model`` (added to the components with
    the models it uses), or no schema at all when the operation states none."""
    if model is None:
        return {}
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}",
                                     mode="serialization", by_alias=True)
    for name, sub in schema.pop("$defs", {}).items():
        components["schemas"][name] = sub
    components["schemas"][model.__name__] = schema
    return {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}


def _responses(ep: EndpointDoc, success: dict[str, Any]) -> dict[str, Any]:
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    responses: dict[str, Any] = {str(ep.status): {"description": "Success"}}
    if ep.status != 204:  # no content, so no media type
        responses[str(ep.status)]["content"] = {ep.media_type: success}
    for status, text in ep.extra_responses.items():
        # Another success (a replay, an answer already given): the same shape.
        responses[str(status)] = {"description": text, "content": {"application/json": success}}
    for code in sorted(_error_codes(ep)):
        responses[str(code)] = {"description": ERROR_TEXT.get(code, "Error"), "content": problem}
        if code == 429:
            responses[str(code)]["headers"] = {"Retry-After": {
                "description": "Seconds to wait before trying again",
                "required": True, "schema": {"type": "integer", "minimum": 0}}}
    return responses


ERROR_TEXT = {
    400: "Malformed request",
    401: "Missing or wrong credentials",
    403: "Not allowed for this role, or a wrong code",
    404: "Not found (or not yours)",
    409: "Refused by a business rule; nothing changed",
    410: "The link has expired",
    413: "The body is larger than this operation accepts",
    422: "Invalid input",
    423: "Locked: an identity check is required",
    428: "More is needed: an identity check, or the tracking number or name with the code",
    429: "Too many failed attempts: wait `Retry-After` seconds",
    503: "A service this operation needs (Redis) does not answer",
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        # an unexpected error's (500): the X-Request-Id its log lines carry
        "request_id": {"type": "string"},
    },
}

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
