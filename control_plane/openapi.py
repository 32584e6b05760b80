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

from control_plane.api import ApiRoute

_REF = "#/components/schemas/{name}"
_PATH_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?}")

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "request_id"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "pattern": "^[0-9]{5}$"},
                "message": {"type": "string"},
                "details": {},
            },
        },
        "request_id": {"type": "string"},
    },
}


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


def _error_responses(public: bool, has_body: bool) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/Error"}
    content = {"application/json": {"schema": ref}}
    responses: dict[str, Any] = {}
    if has_body:
        responses["400"] = {"description": "Malformed or invalid request", "content": content}
    if not public:
        responses["401"] = {"description": "Not authenticated", "content": content}
        responses["403"] = {"description": "Not allowed", "content": content}
    # Every other status a route can answer (404, 409, 413, 429, 503...) is the same envelope:
    # documented once, so no answer is undocumented (schemathesis' status_code_conformance).
    responses["default"] = {"description": "Any other error, in the envelope", "content": content}
    return responses


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
        operation["responses"].update(_error_responses(is_public, route.body is not None))
        if not is_public:
            operation["security"] = [{"bearerAuth": []}]
        if route.sunset is not None:
            operation["deprecated"] = True
        paths.setdefault(path, {})[route.method.lower()] = operation
    components["Error"] = _ERROR_SCHEMA
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
