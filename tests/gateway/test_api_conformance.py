"""schemathesis against a real gateway with its own OpenAPI document (GET /openapi.json,
gateway/openapi.py), as in CI: for every operation, generated requests (valid and invalid,
a bounded number each so the suite stays fast) never get a 5xx; every answer's status is one
the document lists (status_code_conformance); every valid request is accepted
(positive_data_acceptance); every error is the envelope of its route."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance, status_code_conformance

from common.db import create_pool
from gateway.openapi import build_openapi
from tests.factories import make_agent, make_developer, make_key

schema = schemathesis.openapi.from_dict(build_openapi())
CHECKS = [not_a_server_error, status_code_conformance, positive_data_acceptance]


@pytest.fixture(scope="module")
def caller(database_url: str) -> dict[str, str]:
    """A paid developer with a large quota, their key, and an agent that fixes no sampling
    parameter (so any valid temperature or top_p is accepted)."""

    async def build() -> dict[str, str]:
        pool = await create_pool(database_url, min_size=1, max_size=2)
        try:
            developer = await make_developer(pool, quota=10**9, tier="paid")
            key = await make_key(pool, developer)
            agent = await make_agent(pool, temperature=None, name="conformance")
        finally:
            await pool.close()
        return {"key": key.plaintext, "agent_id": agent.agent_id}

    return asyncio.run(build())


def test_the_document_is_served_and_names_every_route(gateway_url: str) -> None:
    from gateway.routes import ROUTES

    served = httpx.get(f"{gateway_url}/openapi.json")
    assert served.status_code == 200
    assert served.json() == build_openapi()
    documented = set(served.json()["paths"])
    assert documented == {r.path for r in ROUTES} - {"/mcp"}  # type: ignore[attr-defined]


def _check_envelope(case: schemathesis.Case, response: Any) -> None:
    if response.status_code < 400:
        return
    body = response.json()
    # The Messages route answers in Anthropic's error shape; the router's own answers (405
    # for a method no route takes) are the plain envelope on every path.
    if case.path.endswith("/v1/messages") and response.status_code != 405:
        assert body.get("type") == "error", (case.body, body)
        assert set(body) == {"type", "error", "request_id"}, body
    else:
        assert set(body) == {"error", "request_id"}, (case.body, body)
    code = body["error"]["code"]
    assert len(code) == 5
    assert int(code[:3]) == response.status_code, body
    assert response.headers["x-request-id"] == [body["request_id"]]


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True)  # fmt: skip
def test_generated_requests_conform(
    case: schemathesis.Case, gateway_url: str, caller: dict[str, str]
) -> None:
    if "agent_id" in (case.path_parameters or {}):
        # The real agent: a made-up id is simply 404, and valid calls must reach the model.
        case.path_parameters["agent_id"] = caller["agent_id"]
    headers = {"Authorization": f"Bearer {caller['key']}"}
    response = case.call(base_url=gateway_url, headers=headers, timeout=30)
    case.validate_response(response, checks=CHECKS, headers=headers)
    _check_envelope(case, response)
