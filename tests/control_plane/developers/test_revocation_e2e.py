"""End to end, property 12 (API Key Revocation Immediacy): a key created through the control
plane's API works at once on two real gateway instances, and the very next request after the
revocation DELETE has answered is refused with 401 `40103` by both. No sleep, no cache wait:
the control plane wrote the gateway's key record before committing."""

from __future__ import annotations

import asyncpg
import httpx

from tests.control_plane.api_client import assert_error, bearer, register
from tests.factories import make_agent


async def chat(http: httpx.AsyncClient, gateway: str, agent_id: str, key: str) -> httpx.Response:
    return await http.post(
        f"{gateway}/proxy/v1/agents/{agent_id}/chat",
        json={"messages": [{"role": "user", "content": "hello"}]},
        headers={"X-AgentLink-Key": key},
    )


async def test_property_12_a_revoked_key_is_refused_on_the_next_request_everywhere(
    control_url: str, gateway_pair: list[str], http: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    agent = await make_agent(db_pool)
    async with httpx.AsyncClient(base_url=control_url) as control:
        auth = bearer((await register(control, "developer"))["access_token"])
        created = await control.post("/api/v1/developers/keys", json={"name": "e2e"}, headers=auth)
        assert created.status_code == 201, created.text
        key, key_id = created.json()["key"], created.json()["id"]

        for gateway in gateway_pair:  # usable at once, on every instance
            response = await chat(http, gateway, agent.agent_id, key)
            assert response.status_code == 200, response.text
            assert response.json()["choices"][0]["message"]["content"]

        revoked = await control.delete(f"/api/v1/developers/keys/{key_id}", headers=auth)
        assert revoked.status_code == 204

    for gateway in gateway_pair:  # the very next request, on every instance
        response = await chat(http, gateway, agent.agent_id, key)
        assert_error(response, 401, "40103")
