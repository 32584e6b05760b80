"""Agents over real HTTP: create, read, list, update into versions, roll back, publish and
unpublish; validation naming the field; ownership; the envelopes in Postgres; the gateway's
Redis record; and that the system prompt never shows up in logs or errors."""

from __future__ import annotations

import asyncio
import logging
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as redis_asyncio

from common import keyspace
from common.domain import AgentConfig
from tests.control_plane.agents.helpers import (
    agent_body,
    config,
    create_agent,
    creator_headers,
    full_config,
)
from tests.control_plane.api_client import assert_error, bearer, register
from tests.factories import agent_status
from tests.processes import TEST_KEYRING

AGENTS = "/api/v1/agents"


async def stored_config(db: asyncpg.Pool, agent_id: str, version: int) -> AgentConfig:
    """A version's config as the gateway reads it: its own envelope, bound to (id, version)."""
    row = await db.fetchrow(
        "SELECT config_encrypted, config_key_id FROM agent_versions"
        " WHERE agent_id = $1 AND version = $2",
        agent_id,
        version,
    )
    assert row is not None
    assert row["config_key_id"] == "t1"
    plaintext = TEST_KEYRING.decrypt(row["config_encrypted"], agent_id=agent_id, version=version)
    return AgentConfig.from_json(plaintext)


async def test_create_makes_a_draft_with_version_1(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    headers = await creator_headers(client)
    submitted = config(max_tokens=500, fallbacks=[{"provider": "anthropic", "model": "claude-x"}])
    created = await create_agent(client, headers, config=submitted, price_per_call="0.05")
    assert created["status"] == "draft"
    assert created["version"] == 1
    assert created["price_per_call"] == "0.05"
    assert created["category"] == "writing"  # stored normalised for exact marketplace filters
    assert created["published_at"] is None
    assert created["config"] == full_config(submitted)
    agent_id = created["id"]
    stored = await stored_config(db_pool, agent_id, 1)
    assert stored.system_prompt == submitted["system_prompt"]
    assert stored.max_tokens == 500
    assert [(t.provider, t.model) for t in stored.fallbacks] == [("anthropic", "claude-x")]
    live = await db_pool.fetchrow("SELECT * FROM agents WHERE id = $1", agent_id)
    assert live["version"] == 1
    assert live["config_encrypted"] == await db_pool.fetchval(
        "SELECT config_encrypted FROM agent_versions WHERE agent_id = $1 AND version = 1", agent_id
    )
    assert submitted["system_prompt"].encode() not in live["config_encrypted"]
    fetched = await client.get(f"{AGENTS}/{agent_id}", headers=headers)
    assert fetched.status_code == 200
    assert fetched.json() == created


async def test_list_is_own_agents_paginated_and_filtered(client: httpx.AsyncClient) -> None:
    headers = await creator_headers(client)
    other = await creator_headers(client)
    await create_agent(client, other)
    ids = [(await create_agent(client, headers, name=f"agent {i}"))["id"] for i in range(5)]
    await client.post(f"{AGENTS}/{ids[0]}/publish", headers=headers)
    first = (await client.get(AGENTS, headers=headers, params={"page_size": 2})).json()
    assert first["total"] == 5
    assert [item["id"] for item in first["items"]] == ids[::-1][:2]
    assert "config" not in first["items"][0]
    third = (await client.get(AGENTS, headers=headers, params={"page": 3, "page_size": 2})).json()
    assert [item["id"] for item in third["items"]] == [ids[0]]
    active = (await client.get(AGENTS, headers=headers, params={"status": "active"})).json()
    assert [item["id"] for item in active["items"]] == [ids[0]]
    assert active["total"] == 1
    bad = await client.get(AGENTS, headers=headers, params={"page_size": 1000})
    assert assert_error(bad, 400, "40002")["error"]["details"][0]["field"] == "page_size"
    bad = await client.get(AGENTS, headers=headers, params={"status": "deleted"})
    assert assert_error(bad, 400, "40002")["error"]["details"][0]["field"] == "status"


INVALID_CREATES: list[tuple[dict[str, Any], str]] = [
    ({"name": "   "}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": None}, "name"),
    ({"description": "d" * 10_001}, "description"),
    ({"category": " " * 3}, "category"),
    ({"category": "c" * 51}, "category"),
    ({"price_per_call": "abc"}, "price_per_call"),
    ({"price_per_call": "NaN"}, "price_per_call"),
    ({"price_per_call": "Infinity"}, "price_per_call"),
    ({"price_per_call": "0"}, "price_per_call"),
    ({"price_per_call": "-0.01"}, "price_per_call"),
    ({"price_per_call": "100.000001"}, "price_per_call"),
    ({"price_per_call": "0.0000001"}, "price_per_call"),
    ({"price_per_call": "0.0100001"}, "price_per_call"),
    ({"price_per_call": True}, "price_per_call"),
    ({"config": config(system_prompt="")}, "config.system_prompt"),
    ({"config": config(system_prompt=" \n\t ")}, "config.system_prompt"),
    ({"config": config(system_prompt="p" * 32_001)}, "config.system_prompt"),
    ({"config": config(provider="acme")}, "config.provider"),
    ({"config": config(model="")}, "config.model"),
    ({"config": config(model="has space")}, "config.model"),
    ({"config": config(temperature=2.01)}, "config.temperature"),
    ({"config": config(temperature=-0.1)}, "config.temperature"),
    ({"config": config(temperature="hot")}, "config.temperature"),
    ({"config": config(max_tokens=0)}, "config.max_tokens"),
    ({"config": config(max_tokens=128_001)}, "config.max_tokens"),
    ({"config": config(max_tokens=1.5)}, "config.max_tokens"),
    ({"config": config(top_p=1.01)}, "config.top_p"),
    ({"config": config(leak_guard="yes")}, "config.leak_guard"),
    ({"config": config(prompt_cache=1)}, "config.prompt_cache"),
    (
        {"config": config(fallbacks=[{"provider": "openai", "model": f"m{i}"} for i in range(4)])},
        "config.fallbacks",
    ),
    (
        {"config": config(fallbacks=[{"provider": "openai", "model": "mock-model"}])},
        "config.fallbacks",
    ),
    ({"config": config(fallbacks=[{"provider": "google", "model": "g"}] * 2)}, "config.fallbacks"),
    (
        {"config": config(fallbacks=[{"provider": "x", "model": "g"}])},
        "config.fallbacks[0].provider",
    ),
    (
        {"config": config(knowledge={"chunk_size": 500, "chunk_overlap": 500})},
        "config.knowledge.chunk_overlap",
    ),
    ({"config": config(knowledge={"top_k": 0})}, "config.knowledge.top_k"),
    ({"config": config(knowledge={"file_ids": ["not-a-uuid"]})}, "config.knowledge.file_ids[0]"),
    ({"config": config(knowledge={"file_ids": [str(uuid.uuid4())]})}, "config.knowledge.file_ids"),
    ({"config": config(secret="x")}, "config"),
    ({"config": {"provider": "openai", "model": "m"}}, "config"),
    ({"config": None}, "config"),
    ({"status": "active"}, "body"),
]


@pytest.mark.parametrize(("overrides", "field"), INVALID_CREATES)
async def test_invalid_creates_name_the_field(
    client: httpx.AsyncClient, overrides: dict[str, Any], field: str
) -> None:
    headers = await creator_headers(client)
    body = agent_body(**overrides)
    response = await client.post(AGENTS, headers=headers, json=body)
    error = assert_error(response, 400, "40002")
    assert error["error"]["details"][0]["field"] == field
    # Nothing of the prompt in the answer, whatever failed.
    prompt = (body.get("config") or {}).get("system_prompt")
    if prompt and prompt.strip():
        assert prompt not in response.text
    listed = (await client.get(AGENTS, headers=headers)).json()
    assert listed["total"] == 0


async def test_missing_required_fields_and_bad_json(client: httpx.AsyncClient) -> None:
    headers = await creator_headers(client)
    body = agent_body()
    del body["price_per_call"]
    assert_error(await client.post(AGENTS, headers=headers, json=body), 400, "40002")
    malformed = await client.post(
        AGENTS, headers={**headers, "content-type": "application/json"}, content=b'{"name": '
    )
    assert_error(malformed, 400, "40001")


async def test_a_price_given_as_a_json_number_is_read_exactly(client: httpx.AsyncClient) -> None:
    headers = await creator_headers(client)
    created = await create_agent(client, headers, price_per_call=0.1)
    assert created["price_per_call"] == "0.1"


async def test_update_is_partial_and_makes_a_new_version(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    headers = await creator_headers(client)
    original = config(top_p=0.9)
    created = await create_agent(client, headers, config=original)
    agent_id = created["id"]
    response = await client.put(
        f"{AGENTS}/{agent_id}",
        headers=headers,
        json={"config": {"temperature": 1.2, "top_p": None}, "price_per_call": "0.02"},
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["version"] == 2
    assert updated["price_per_call"] == "0.02"
    assert updated["name"] == created["name"]
    assert updated["config"] == {**created["config"], "temperature": 1.2, "top_p": None}
    renamed = await client.put(
        f"{AGENTS}/{agent_id}", headers=headers, json={"name": "Renamed", "description": None}
    )
    assert renamed.json()["version"] == 3
    assert renamed.json()["description"] is None
    assert renamed.json()["config"] == updated["config"]
    # Every version keeps its own config, envelope and price.
    assert (await stored_config(db_pool, agent_id, 1)).top_p == 0.9
    assert (await stored_config(db_pool, agent_id, 2)).temperature == 1.2
    versions = (await client.get(f"{AGENTS}/{agent_id}/versions", headers=headers)).json()
    assert [(v["version"], v["price_per_call"], v["current"]) for v in versions["items"]] == [
        (3, "0.02", True),
        (2, "0.02", False),
        (1, "0.01", False),
    ]
    assert all("config" not in item for item in versions["items"])
    one = (await client.get(f"{AGENTS}/{agent_id}/versions/1", headers=headers)).json()
    assert one["config"] == created["config"]
    assert one["name"] == created["name"]
    assert one["current"] is False


async def test_an_update_with_nothing_in_it_is_refused(client: httpx.AsyncClient) -> None:
    headers = await creator_headers(client)
    agent_id = (await create_agent(client, headers))["id"]
    response = await client.put(f"{AGENTS}/{agent_id}", headers=headers, json={})
    assert assert_error(response, 400, "40002")["error"]["details"][0]["field"] == "body"
    response = await client.put(
        f"{AGENTS}/{agent_id}", headers=headers, json={"config": {"temperature": 5}}
    )
    error = assert_error(response, 400, "40002")
    assert error["error"]["details"][0]["field"] == "config.temperature"
    response = await client.put(
        f"{AGENTS}/{agent_id}",
        headers=headers,
        json={"config": {"fallbacks": [{"provider": "openai", "model": "mock-model"}]}},
    )
    error = assert_error(response, 400, "40002")
    assert error["error"]["details"][0]["field"] == "config.fallbacks"
    after = (await client.get(f"{AGENTS}/{agent_id}", headers=headers)).json()
    assert after["version"] == 1


async def test_rollback_appends_a_version_with_the_old_config(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    headers = await creator_headers(client)
    created = await create_agent(client, headers)
    agent_id = created["id"]
    await client.put(
        f"{AGENTS}/{agent_id}",
        headers=headers,
        json={
            "config": {"system_prompt": "A different prompt entirely."},
            "price_per_call": "0.03",
        },
    )
    response = await client.post(f"{AGENTS}/{agent_id}/versions/1/rollback", headers=headers)
    assert response.status_code == 200, response.text
    rolled = response.json()
    assert rolled["version"] == 3
    assert rolled["config"] == created["config"]
    assert rolled["price_per_call"] == "0.03"  # the listing and price stay as they are
    assert (await stored_config(db_pool, agent_id, 2)).system_prompt == (
        "A different prompt entirely."
    )
    assert (await stored_config(db_pool, agent_id, 3)).system_prompt == (
        created["config"]["system_prompt"]
    )
    for path in ("versions/9", "versions/0", "versions/x", "versions/99999999999"):
        assert_error(await client.get(f"{AGENTS}/{agent_id}/{path}", headers=headers), 404, "40401")
    missing = await client.post(f"{AGENTS}/{agent_id}/versions/9/rollback", headers=headers)
    assert_error(missing, 404, "40401")


async def test_publish_and_unpublish_write_through_to_the_gateway_record(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    headers = await creator_headers(client)
    agent_id = (await create_agent(client, headers, price_per_call="0.05"))["id"]
    record = keyspace.agent_record(agent_id)
    published = await client.post(f"{AGENTS}/{agent_id}/publish", headers=headers)
    assert published.status_code == 200, published.text
    first_published_at = published.json()["published_at"]
    assert published.json()["status"] == "active"
    assert first_published_at is not None
    assert await redis.hgetall(record) == {
        b"status": b"active",
        b"version": b"1",
        b"units": b"5",
        b"knowledge": b"0",
    }
    await client.put(f"{AGENTS}/{agent_id}", headers=headers, json={"price_per_call": "0.1"})
    assert await redis.hgetall(record) == {
        b"status": b"active",
        b"version": b"2",
        b"units": b"10",
        b"knowledge": b"0",
    }
    unpublished = await client.post(f"{AGENTS}/{agent_id}/unpublish", headers=headers)
    assert unpublished.json()["status"] == "inactive"
    assert (await redis.hget(record, "status")) == b"inactive"
    again = await client.post(f"{AGENTS}/{agent_id}/publish", headers=headers)
    assert again.json()["published_at"] == first_published_at  # the first publication stands
    assert await agent_status(db_pool, agent_id) == "active"
    twice = await client.post(f"{AGENTS}/{agent_id}/publish", headers=headers)
    assert twice.status_code == 200
    assert twice.json()["status"] == "active"


async def test_unpublishing_a_draft_leaves_a_draft(client: httpx.AsyncClient) -> None:
    headers = await creator_headers(client)
    agent_id = (await create_agent(client, headers))["id"]
    response = await client.post(f"{AGENTS}/{agent_id}/unpublish", headers=headers)
    assert response.status_code == 200
    assert response.json()["status"] == "draft"


async def test_a_suspended_agent_cannot_be_republished_by_its_creator(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    headers = await creator_headers(client)
    agent_id = (await create_agent(client, headers))["id"]
    await client.post(f"{AGENTS}/{agent_id}/publish", headers=headers)
    await db_pool.execute("UPDATE agents SET status = 'suspended' WHERE id = $1", agent_id)
    await redis.hset(keyspace.agent_record(agent_id), "status", "suspended")
    assert_error(await client.post(f"{AGENTS}/{agent_id}/publish", headers=headers), 403, "40301")
    assert_error(await client.post(f"{AGENTS}/{agent_id}/unpublish", headers=headers), 403, "40301")
    # It can still be fixed: an update makes a new version, and the agent stays suspended.
    fixed = await client.put(
        f"{AGENTS}/{agent_id}", headers=headers, json={"config": {"system_prompt": "Behave."}}
    )
    assert fixed.status_code == 200
    assert fixed.json()["status"] == "suspended"
    assert await redis.hget(keyspace.agent_record(agent_id), "status") == b"suspended"


def one_agents_routes(agent_id: str) -> list[tuple[str, str, dict[str, str] | None]]:
    """(method, path, body) of every route on one agent."""
    return [
        ("GET", f"{AGENTS}/{agent_id}", None),
        ("PUT", f"{AGENTS}/{agent_id}", {"name": "mine now"}),
        ("GET", f"{AGENTS}/{agent_id}/versions", None),
        ("GET", f"{AGENTS}/{agent_id}/versions/1", None),
        ("POST", f"{AGENTS}/{agent_id}/versions/1/rollback", None),
        ("POST", f"{AGENTS}/{agent_id}/publish", None),
        ("POST", f"{AGENTS}/{agent_id}/unpublish", None),
    ]


async def test_another_creators_agent_is_403_and_an_unknown_one_404(
    client: httpx.AsyncClient,
) -> None:
    owner = await creator_headers(client)
    intruder = await creator_headers(client)
    agent_id = (await create_agent(client, owner))["id"]
    for method, path, payload in one_agents_routes(agent_id):
        response = await client.request(method, path, headers=intruder, json=payload)
        body = assert_error(response, 403, "40302")
        assert "PROMPT-" not in response.text, body
        for unknown in (str(uuid.uuid4()), "not-a-uuid"):
            missing = await client.request(
                method, path.replace(agent_id, unknown), headers=owner, json=payload
            )
            assert_error(missing, 404, "40401")
    mine = (await client.get(f"{AGENTS}/{agent_id}", headers=owner)).json()
    assert mine["version"] == 1
    assert mine["status"] == "draft"
    # An upper-case spelling of the id is the same agent.
    upper = await client.get(f"{AGENTS}/{agent_id.upper()}", headers=owner)
    assert upper.status_code == 200
    assert upper.json()["id"] == agent_id


async def test_agent_routes_are_for_creators_only(client: httpx.AsyncClient) -> None:
    owner = await creator_headers(client)
    agent_id = (await create_agent(client, owner))["id"]
    developer = bearer((await register(client, "developer"))["access_token"])
    calls = [("POST", AGENTS, agent_body()), ("GET", AGENTS, None), *one_agents_routes(agent_id)]
    for method, path, payload in calls:
        as_developer = await client.request(method, path, headers=developer, json=payload)
        assert_error(as_developer, 403, "40301")
        anonymous = await client.request(method, path, json=payload)
        assert_error(anonymous, 401, "40101")


async def test_concurrent_updates_lose_no_version(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    headers = await creator_headers(client)
    agent_id = (await create_agent(client, headers))["id"]
    prompts = [f"Concurrent prompt {i}." for i in range(12)]
    responses = await asyncio.gather(
        *(
            client.put(
                f"{AGENTS}/{agent_id}", headers=headers, json={"config": {"system_prompt": prompt}}
            )
            for prompt in prompts
        )
    )
    assert all(response.status_code == 200 for response in responses)
    assert sorted(response.json()["version"] for response in responses) == list(range(2, 14))
    for response in responses:
        version = response.json()["version"]
        stored = await stored_config(db_pool, agent_id, version)
        assert stored.system_prompt == response.json()["config"]["system_prompt"]
    assert {(await stored_config(db_pool, agent_id, v)).system_prompt for v in range(2, 14)} == set(
        prompts
    )


async def test_the_prompt_never_reaches_logs_or_errors(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    marker = f"LOGLEAK-{uuid.uuid4().hex}"
    headers = await creator_headers(client)
    intruder = await creator_headers(client)
    submitted = config(system_prompt=f"Secret instructions {marker}")
    responses = [await client.post(AGENTS, headers=headers, json=agent_body(config=submitted))]
    agent_id = responses[0].json()["id"]
    for payload in (
        {"config": {"system_prompt": f"{marker} v2", "temperature": 9}},
        {"config": {"system_prompt": f"{marker} v2", "provider": "acme"}},
        {"config": {"system_prompt": f"{marker} v2", "unknown": 1}},
        {"config": {"system_prompt": f"{marker} v2"}, "price_per_call": "1000"},
    ):
        responses.append(await client.put(f"{AGENTS}/{agent_id}", headers=headers, json=payload))
    responses.append(await client.get(f"{AGENTS}/{agent_id}", headers=intruder))
    responses.append(
        await client.post(AGENTS, headers=headers, json=agent_body(config=submitted, name=""))
    )
    responses.append(await client.post(f"{AGENTS}/{agent_id}/publish", headers=headers))
    assert [response.status_code for response in responses] == [
        201,
        400,
        400,
        400,
        400,
        403,
        400,
        200,
    ]
    for response in responses[1:]:
        assert marker not in response.text
    for record in caplog.records:
        assert marker not in record.getMessage()
        assert marker not in str(record.__dict__)
    assert marker not in caplog.text


async def test_the_openapi_document_lists_the_routes(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    paths = document["paths"]
    assert set(paths["/api/v1/agents"]) == {"get", "post"}
    assert set(paths["/api/v1/agents/{agent_id}"]) == {"get", "put"}
    assert "post" in paths["/api/v1/agents/{agent_id}/versions/{version}/rollback"]
    assert set(paths["/api/v1/creators/me"]) == {"get", "put"}
    assert "put" in paths["/api/v1/creators/me/wallet"]


def test_money_text() -> None:
    from control_plane.agents.service import money_text

    assert money_text(Decimal("0.010000")) == "0.01"
    assert money_text(Decimal("10.000000")) == "10"
    assert money_text(Decimal("0E-8")) == "0"
