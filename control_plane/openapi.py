"""The OpenAPI 3.1 document and a docs page, generated from the route table.

Schemas come from the msgspec types the routes declare, so the document describes exactly
what the code validates. The docs page is plain server-rendered HTML (no CDN assets: the
control plane must not depend on the internet to document itself).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any

import msgspec

from common.errors import error_envelope_schema
from control_plane.api import ApiRoute

_REF = "#/components/schemas/{name}"
_PATH_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?}")


# A route taking file uploads (ApiRoute.extra["multipart"]): one or more `file` fields.
_MULTIPART_FILES = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "array", "items": {"type": "string", "format": "binary"}}
                },
            }
        }
    },
}


_STATUS_TEXT = {
    400: "Malformed or invalid request (the failing field is named)",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    409: "Conflicts with the resource's current state",
    413: "Body too large",
    415: "Unsupported file type",
    429: "Too many requests (Retry-After)",
    503: "A storage dependency is unavailable, or maintenance (Retry-After)",
}


def error_statuses(route: ApiRoute, public: bool) -> list[int]:
    """Every error status the route can answer: what its shape implies (input → 400, a path
    id → 404, a body → 413, a token → 401/403, storage → 503) and what it declares."""
    statuses = {503, *route.errors}
    has_body = route.body is not None or bool(route.extra.get("multipart"))
    if has_body or route.query is not None or "{" in route.path:
        statuses.add(400)
    if has_body:
        statuses.add(413)
    if route.extra.get("multipart"):
        statuses.add(415)
    if "{" in route.path:
        statuses.add(404)
    if not public:
        statuses |= {401, 403}
    return sorted(statuses)


def _error_responses(route: ApiRoute, public: bool) -> dict[str, Any]:
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {
        str(status): {"description": _STATUS_TEXT[status], "content": content}
        for status in error_statuses(route, public)
    }


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema: a query string cannot spell null (absent means default)."""
    options = [option for option in schema.get("anyOf", ()) if option != {"type": "null"}]
    if len(options) != 1:
        return schema
    outer = {key: value for key, value in schema.items() if key not in {"anyOf", "default"}}
    return {**options[0], **outer}


def _query_parameters(struct_schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(struct_schema.get("required", ()))
    return [
        {"name": name, "in": "query", "required": name in required,
         "schema": _without_null(schema)}
        for name, schema in struct_schema.get("properties", {}).items()
    ]  # fmt: skip


# common.validation refuses a NUL character in any text (Postgres cannot store one).
_NO_NUL = "^[^\\x00]*$"


def _storable_text(node: Any) -> Any:
    """Every free-text string schema in `node` says that it takes no NUL character."""
    if isinstance(node, list):
        return [_storable_text(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _storable_text(value) for key, value in node.items()}
    if node.get("type") == "string" and not {"format", "pattern", "enum", "const"} & set(node):
        node["pattern"] = _NO_NUL
    return node


def build_openapi(routes: Iterable[ApiRoute], public: frozenset[tuple[str, str]]) -> dict[str, Any]:
    routes = list(routes)
    types: list[Any] = []
    for route in routes:
        types += [kind for kind in (route.body, route.response) if kind is not None]
    queries = list({route.query for route in routes if route.query is not None})
    schemas_out, components = msgspec.json.schema_components(types + queries, ref_template=_REF)
    schema_of = dict(zip(types + queries, schemas_out, strict=True))
    # A query struct is spelled out as parameters, not kept as a component.
    query_schema = {kind: components.pop(schema_of[kind]["$ref"].rsplit("/", 1)[1])
                    for kind in queries}  # fmt: skip
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        is_public = route.operation in public
        path = _PATH_PARAM.sub(r"{\1}", route.path)
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": f"{route.method.lower()}_{route.handler.__name__}",
            "tags": list(route.tags),
            "responses": {},
        }
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PATH_PARAM.findall(route.path)
        ]
        if route.query is not None:
            parameters += _query_parameters(query_schema[route.query])
        if parameters:
            operation["parameters"] = parameters
        if route.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema_of[route.body]}},
            }
        if route.extra.get("multipart"):
            operation["requestBody"] = _MULTIPART_FILES
        success: dict[str, Any] = {"description": "Success"}
        if route.response is not None:
            success["content"] = {"application/json": {"schema": schema_of[route.response]}}
        operation["responses"][str(route.status)] = success
        operation["responses"].update(_error_responses(route, is_public))
        if not is_public:
            operation["security"] = [{"bearerAuth": []}]
        if route.sunset is not None:
            operation["deprecated"] = True
        paths.setdefault(path, {})[route.method.lower()] = operation
    components["Error"] = error_envelope_schema()
    paths = _storable_text(paths)
    components = _storable_text(components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "AgentLink control plane", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def docs_page(document: dict[str, Any]) -> str:
    rows = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            lock = "" if "security" not in operation else " 🔒"
            deprecated = " <em>(deprecated)</em>" if operation.get("deprecated") else ""
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}"
                f"</code></td><td>{html.escape(operation['summary'])}{lock}{deprecated}</td></tr>"
            )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>AgentLink API</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:.2em .8em}</style></head>"
        "<body><h1>AgentLink control plane API</h1>"
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a> (OpenAPI 3.1). "
        "🔒 = needs <code>Authorization: Bearer &lt;access token&gt;</code>.</p>"
        f"<table>{''.join(rows)}</table></body></html>"
    )
