"""The OpenAPI document describes what the handlers accept: every query parameter has the type
and the bounds its msgspec field declares (no `{}` schema), so generated clients and fuzzers
send what the routes take."""

from __future__ import annotations

import msgspec

from control_plane.routes import API_ROUTES, OPENAPI


def _parameters(method: str, path: str) -> dict[str, dict[str, object]]:
    operation = OPENAPI["paths"][path][method]
    return {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "query"}


def test_every_query_field_is_a_typed_parameter() -> None:
    for route in API_ROUTES:
        if route.query is None:
            continue
        documented = _parameters(route.method.lower(), route.path)
        names = {field.encode_name for field in msgspec.structs.fields(route.query)}
        assert set(documented) == names, route.path
        for name, parameter in documented.items():
            schema = parameter["schema"]
            assert isinstance(schema, dict)
            assert schema.get("type") in {"string", "integer", "boolean"} or "enum" in schema, (
                route.path, name, schema,
            )  # fmt: skip
            assert "anyOf" not in schema, "a query string has no null"


def test_query_bounds_are_the_handlers() -> None:
    search = _parameters("get", "/api/v1/marketplace/agents")
    assert search["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100,
                                         "default": 20}  # fmt: skip
    assert search["q"]["schema"] == {"type": "string", "maxLength": 200}
    assert search["sort"]["schema"]["enum"] == ["newest", "popular", "price", "rating", "relevance"]
    assert search["limit"]["required"] is False
    audit = _parameters("get", "/api/v1/admin/audit-log")
    assert audit["actor_id"]["schema"] == {"type": "string", "format": "uuid"}
    usage = _parameters("get", "/api/v1/developers/usage")
    assert usage["from"]["schema"]["format"] == "date-time"


def test_query_structs_are_not_left_as_components() -> None:
    queries = {route.query.__name__ for route in API_ROUTES if route.query is not None}
    assert not queries & set(OPENAPI["components"]["schemas"])
