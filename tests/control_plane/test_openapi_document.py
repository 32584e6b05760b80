"""The OpenAPI document describes what the handlers accept: every query parameter has the type
and the bounds its msgspec field declares (no `{}` schema), so generated clients and fuzzers
send what the routes take."""

from __future__ import annotations

import msgspec
import pytest

from common.errors import ApiError
from control_plane.api import decode
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
    assert search["q"]["schema"] == {"type": "string", "maxLength": 200, "pattern": "^[^\\x00]*$"}
    assert search["sort"]["schema"]["enum"] == ["newest", "popular", "price", "rating", "relevance"]
    assert search["limit"]["required"] is False
    audit = _parameters("get", "/api/v1/admin/audit-log")
    assert audit["actor_id"]["schema"] == {"type": "string", "format": "uuid"}
    usage = _parameters("get", "/api/v1/developers/usage")
    assert usage["from"]["schema"]["format"] == "date-time"


def test_query_structs_are_not_left_as_components() -> None:
    queries = {route.query.__name__ for route in API_ROUTES if route.query is not None}
    assert not queries & set(OPENAPI["components"]["schemas"])


def test_every_operation_lists_its_error_statuses_and_no_catch_all() -> None:
    """No `default` response: schemathesis' status_code_conformance can then fail, and it
    runs in CI (tests/control_plane/test_api_fuzz.py)."""
    for path, operations in OPENAPI["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert "default" not in statuses, (method, path)
            assert "503" in statuses, (method, path)
            if "security" in operation:
                assert {"401", "403"} <= statuses, (method, path)
            if "{" in path:
                assert "404" in statuses, (method, path)
    login = OPENAPI["paths"]["/api/v1/auth/login"]["post"]["responses"]
    assert set(login) == {"200", "400", "401", "413", "429", "503"}


def test_free_text_says_it_takes_no_nul() -> None:
    register = OPENAPI["components"]["schemas"]["RegisterRequest"]["properties"]
    assert register["password"]["pattern"] == "^[^\\x00]*$"
    assert "\\x00" in register["email"]["pattern"]
    search = _parameters("get", "/api/v1/marketplace/agents")
    assert search["q"]["schema"]["pattern"] == "^[^\\x00]*$"


def test_an_integer_may_be_written_with_a_zero_fraction() -> None:
    class Body(msgspec.Struct, forbid_unknown_fields=True):
        units: int
        ratio: float = 0.5

    assert decode(b'{"units": 5.0, "ratio": 1.0}', Body) == Body(5, 1.0)
    for raw, message in ((b'{"units": 5.5}', "got `float`"), (b'{"units": "5"}', "got `str`")):
        with pytest.raises(ApiError) as raised:
            decode(raw, Body)
        assert message in raised.value.details[0]["message"]
