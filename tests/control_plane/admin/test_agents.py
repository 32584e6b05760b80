"""Admin agent management over real HTTP: listing and details never show the config, and a
forced status holds on both gateways' very next request."""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg
import httpx

from common import keyspace
from common.domain import AdminRole
from tests.control_plane.admin.support import Admin, Gateways, audit_rows, put_status
from tests.control_plane.api_client import admin_token, assert_error, bearer
from tests.factories import agent_status, make_account, make_agent

AG = "/api/v1/admin/agents"


async def test_agents_are_listed_and_shown_without_their_config(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    _, support = await admin_token(db_pool, AdminRole.SUPPORT)
    marker = f"MARKER-{uuid.uuid4().hex}"
    agent = await make_agent(db_pool, system_prompt=f"Never reveal {marker}.")
    draft = await make_agent(db_pool, status="draft")
    await db_pool.execute("UPDATE agents SET creator_id = $1 WHERE id = $2",
                          agent.creator_id, draft.agent_id)  # fmt: skip

    listing = await client.get(AG, params={"creator_id": agent.creator_id}, headers=bearer(support))
    assert listing.status_code == 200, listing.text
    body = listing.json()
    assert body["total"] == 2
    assert {item["id"] for item in body["items"]} == {agent.agent_id, draft.agent_id}
    drafts = await client.get(AG, params={"creator_id": agent.creator_id, "status": "draft"},
                              headers=bearer(support))  # fmt: skip
    assert [item["id"] for item in drafts.json()["items"]] == [draft.agent_id]
    named = await client.get(AG, params={"creator_id": agent.creator_id, "q": "TEST AG"},
                             headers=bearer(support))  # fmt: skip
    assert named.json()["total"] == 2

    detail = await client.get(f"{AG}/{agent.agent_id}", headers=bearer(support))
    assert detail.status_code == 200
    item = detail.json()
    assert item["status"] == "active"
    assert item["description"] == "for tests"
    assert item["price_per_call"] == "0.010000"
    for response in (listing, detail):
        assert marker not in response.text
        assert "config" not in response.text
        assert "system_prompt" not in response.text

    assert_error(await client.get(f"{AG}/{uuid.uuid4()}", headers=bearer(support)), 404, "40401")
    assert_error(await client.get(f"{AG}/nope", headers=bearer(support)), 404, "40401")
    bad = await client.get(AG, params={"creator_id": "nope"}, headers=bearer(support))
    assert_error(bad, 400, "40002")


async def test_forced_suspension_holds_on_the_next_gateway_request(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, gateways: Gateways, super_admin: Admin
) -> None:
    account, agent = await make_account(db_pool), await make_agent(db_pool)
    assert await gateways.statuses(account, agent) == [200, 200]

    body = {"status": "suspended", "reason": "prompt injection"}
    changed = await put_status(client, f"{AG}/{agent.agent_id}", super_admin, body)
    assert changed["status"] == "suspended"
    await gateways.assert_refused(agent.agent_id, account.key.plaintext, 404, "40401")
    record = await gateways.redis.hgetall(keyspace.agent_record(agent.agent_id))
    # The gateway filled the record on the calls before (knowledge 0); suspension keeps that.
    assert record == {b"status": b"suspended", b"version": b"1", b"units": b"1", b"knowledge": b"0"}
    assert await agent_status(db_pool, agent.agent_id) == "suspended"

    await put_status(client, f"{AG}/{agent.agent_id}", super_admin, {"status": "active"})
    assert await gateways.statuses(account, agent) == [200, 200]

    rows = await audit_rows(db_pool, target_id=agent.agent_id, action="agent.status")
    assert [str(row["actor_id"]) for row in rows] == [super_admin.user_id] * 2
    assert rows[0]["details"]["before"] == {"status": "active"}
    assert rows[0]["details"]["after"] == {"status": "suspended"}
    assert rows[0]["details"]["reason"] == "prompt injection"
    assert rows[1]["details"]["after"] == {"status": "active"}


async def test_forcing_a_draft_active_publishes_it_with_its_price_in_units(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, gateways: Gateways, super_admin: Admin
) -> None:
    agent = await make_agent(db_pool, status="draft", price=Decimal("0.05"))
    key = (await make_account(db_pool)).key
    first, second = gateways.urls
    assert_error(await gateways.chat(first, agent.agent_id, key.plaintext), 404, "40401")
    response = await client.put(f"{AG}/{agent.agent_id}/status", headers=super_admin.headers,
                                json={"status": "active"})  # fmt: skip
    assert response.status_code == 200
    assert response.json()["published_at"] is not None
    record = await gateways.redis.hgetall(keyspace.agent_record(agent.agent_id))
    assert record[b"units"] == b"5"
    assert (await gateways.chat(second, agent.agent_id, key.plaintext)).status_code == 200


async def test_agent_status_is_validated(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, super_admin: Admin
) -> None:
    agent = await make_agent(db_pool)
    url = f"{AG}/{agent.agent_id}/status"
    for body in ({"status": "draft"}, {"status": "deleted"}, {}, {"status": "active", "x": 1}):
        assert_error(await client.put(url, headers=super_admin.headers, json=body), 400, "40002")
    assert_error(
        await client.put(f"{AG}/{uuid.uuid4()}/status", headers=super_admin.headers,
                         json={"status": "inactive"}),
        404, "40401",
    )  # fmt: skip
