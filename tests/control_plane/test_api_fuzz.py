"""schemathesis against the control plane's own OpenAPI document, as in CI: generated
requests for every operation (valid and invalid, a bounded number each so the suite stays
fast), each with a token of a user type the operation serves, never get a 5xx; every status
answered is one the document lists (status_code_conformance); every valid request is
accepted (positive_data_acceptance); every error is the documented envelope."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance, status_code_conformance

from control_plane.routes import OPENAPI
from tests.control_plane.api_client import role_tokens

schema = schemathesis.openapi.from_dict(OPENAPI)
CHECKS = [not_a_server_error, status_code_conformance, positive_data_acceptance]
# What a schema cannot say, each refused with 400 naming the field: a cursor is opaque (only
# the strings a listing issued are cursors; a forged one is 400, test_input_bounds.py); a
# range ends after it starts (`to` defaults to now) and has a longest span; a price range's
# ends are in order; a settlement's `through` is not in the future. A payment provider's
# event is valid only with the provider's signature over it (SIGNED).
UNSAYABLE = {
    ("cursor", "Not a cursor from this listing"),
    ("from", "The range is at most 366 days"),
    ("from", "`from` must be before `to`"),
    ("from", "`from` must be before `to`."),
    ("through", "A period that has not ended cannot be settled."),
    ("min_price", "min_price must not exceed max_price"),
}
SIGNED = {"/api/v1/payments/webhook/stripe", "/api/v1/payments/webhook/coinbase"}


@pytest.fixture(scope="module")
def tokens(control_url: str, database_url: str) -> dict[str, str]:
    async def made() -> dict[str, str]:
        db = await asyncpg.connect(database_url)
        try:
            return await role_tokens(control_url, db)
        finally:
            await db.close()

    return asyncio.run(made())


def _token_for(path: str, tokens: dict[str, str]) -> str:
    if path.startswith("/api/v1/admin"):
        return tokens["admin"]
    if path.startswith(("/api/v1/developers", "/api/v1/reviews")):
        return tokens["developer"]
    return tokens["creator"]


def _unsayable(response: Any) -> bool:
    if response.status_code != 400:
        return False
    details = response.json()["error"].get("details") or []
    return len(details) == 1 and (details[0]["field"], details[0]["message"]) in UNSAYABLE


@schema.parametrize()
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_operation_answers_with_a_server_error(
    case: schemathesis.Case, control_url: str, tokens: dict[str, str]
) -> None:
    headers = {"Authorization": f"Bearer {_token_for(case.path, tokens)}"}
    response = case.call(base_url=control_url, headers=headers)
    checks = CHECKS
    if case.path in SIGNED or _unsayable(response):
        checks = [check for check in CHECKS if check is not positive_data_acceptance]
    case.validate_response(response, checks=checks, headers=headers)
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "request_id"}
        assert len(body["error"]["code"]) == 5
        assert response.headers["x-request-id"] == [body["request_id"]]
