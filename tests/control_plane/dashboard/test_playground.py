"""The playground's relay to the real gateway, and the short-lived key it calls with."""

from __future__ import annotations

import re
import time

import asyncpg
import orjson
import redis.asyncio as redis_asyncio

from common import keyspace
from common.sse import events_of
from control_plane.developers import session_keys
from tests.control_plane.dashboard.conftest import Browserless
from tests.control_plane.dashboard.support import create_agent, find, user_id_of

FULL_KEY = re.compile(r"ak_[0-9A-Za-z]{38}")


async def _published_agent(creator: Browserless, price: str = "0.01") -> str:
    await creator.register("creator")
    return await create_agent(
        creator, name="Playground echo", prompt="PLAYGROUND-SECRET-PROMPT", price=price,
        publish=True,
    )  # fmt: skip


async def _chat(client: Browserless, agent_id: str, text: str) -> tuple[int, dict[str, str], str]:
    response = await client.http.post(
        f"/playground/{agent_id}/chat",
        content=orjson.dumps({"messages": [{"role": "user", "content": text}]}),
        headers={"Content-Type": "application/json", "X-CSRF-Token": client.csrf,
                 "Origin": str(client.http.base_url).rstrip("/")},
    )  # fmt: skip
    return response.status_code, dict(response.headers), response.text


def _streamed_text(body: str) -> str:
    text = ""
    for event in events_of(body.encode()):
        if event.data != b"[DONE]":
            for choice in orjson.loads(event.data)["choices"]:  # the usage chunk has none
                text += choice["delta"].get("content") or ""
    return text


async def _in_the_playground(developer: Browserless, creator: Browserless) -> tuple[str, str]:
    """A new developer on the playground page of the creator's new agent; returns (agent id,
    the developer's email)."""
    agent_id = await _published_agent(creator)
    email = await developer.register("developer")
    await developer.get(f"/playground/{agent_id}")
    return agent_id, email


async def _chatting_developer(
    developer: Browserless, creator: Browserless, db: asyncpg.Pool
) -> tuple[str, str, asyncpg.Record]:
    """`_in_the_playground`, and one chat there answered: (agent id, the developer's email,
    the one playground key that chat minted)."""
    agent_id, email = await _in_the_playground(developer, creator)
    assert (await _chat(developer, agent_id, "hi"))[0] == 200
    [key] = await _session_keys(db, email)
    return agent_id, email, key


async def _session_keys(db: asyncpg.Pool, email: str) -> list[asyncpg.Record]:
    return await db.fetch(
        """SELECT k.id, k.revoked_at, k.permissions, k.key_hash, u.redis_shard
           FROM api_keys k JOIN users u ON u.id = k.user_id
           WHERE u.email = $1 AND k.permissions->>'scope' = 'playground'
           ORDER BY k.created_at""",
        email,
    )


async def test_the_playground_streams_through_the_gateway_and_bills_like_any_call(
    browserless: Browserless, another: Browserless, db_pool: asyncpg.Pool
) -> None:
    agent_id = await _published_agent(another, price="0.02")
    email = await browserless.register("developer")
    page = await browserless.get(f"/playground/{agent_id}")
    assert page.status_code == 200
    assert "Free trials left here" in page.text
    quotas = []
    for index in range(4):  # three free trials, then two quota units (price 0.02)
        status, headers, body = await _chat(
            browserless, agent_id, f"hello {index} [[mock chunks=4 chunk_delay_ms=5]]"
        )
        assert status == 200, body
        assert headers["content-type"].startswith("text/event-stream")
        assert _streamed_text(body) == f"Mock reply to: hello {index}"
        assert headers["x-ratelimit-limit"] == "1000"
        quotas.append(int(headers["x-quota-remaining"]))
        assert not FULL_KEY.search(body)
        assert "PLAYGROUND-SECRET-PROMPT" not in body
    assert quotas[:3] == [100, 100, 100]
    assert quotas[3] == 98
    keys = await _session_keys(db_pool, email)
    assert len(keys) == 1  # one key for the session, reused by every call
    assert keys[0]["revoked_at"] is None
    listing = await browserless.get("/developer/keys")
    assert "Playground (browser session)" not in listing.text.split("<h2>Your keys</h2>")[1][:400]
    assert not FULL_KEY.search(listing.text)


async def test_without_javascript_the_form_gets_the_whole_answer(
    browserless: Browserless, another: Browserless
) -> None:
    agent_id, _ = await _in_the_playground(browserless, another)
    response = await browserless.post(
        f"/playground/{agent_id}", {"message": "plain form", "history": "[]"}
    )
    assert response.status_code == 200, response.text
    assert "Mock reply to: plain form" in response.text
    history = find(r'name="history" id="history" value="([^"]*)"', response.text)
    assert "plain form" in history.replace("&#34;", '"')
    follow_up = await browserless.post(
        f"/playground/{agent_id}",
        {"message": "second", "history": history.replace("&#34;", '"')},
    )
    assert "Mock reply to: second" in follow_up.text
    assert "Mock reply to: plain form" in follow_up.text  # the conversation carries on


async def test_gateway_refusals_reach_the_page_as_they_are(
    browserless: Browserless, another: Browserless
) -> None:
    agent_id, _ = await _in_the_playground(browserless, another)
    unpublished = await another.post(f"/creator/agents/{agent_id}/unpublish")
    assert unpublished.status_code == 303
    status, _, body = await _chat(browserless, agent_id, "are you there?")
    assert status == 404
    assert orjson.loads(body)["error"]["code"] == "40401"
    invalid = await browserless.http.post(
        f"/playground/{agent_id}/chat", content=b'{"messages": []}',
        headers={"Content-Type": "application/json", "X-CSRF-Token": browserless.csrf},
    )  # fmt: skip
    assert invalid.status_code == 400
    no_token = await browserless.http.post(
        f"/playground/{agent_id}/chat",
        content=b'{"messages": [{"role": "user", "content": "x"}]}',
        headers={"Content-Type": "application/json"},
    )
    assert no_token.status_code == 403


async def test_logout_revokes_the_playground_key_everywhere(
    browserless: Browserless, another: Browserless, db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
) -> None:  # fmt: skip
    _, email, key = await _chatting_developer(browserless, another, db_pool)
    await browserless.post("/logout")
    [key] = await _session_keys(db_pool, email)
    assert key["revoked_at"] is not None
    record = await redis.hget(
        keyspace.api_key_record(key["redis_shard"], key["key_hash"].strip()), "status"
    )
    assert record == b"revoked"  # the gateway refuses it on its next request
    user_id = await user_id_of(db_pool, email)
    assert await redis.get(keyspace.playground_key(key["redis_shard"], str(user_id))) is None


async def test_the_worker_sweep_revokes_expired_playground_keys(
    browserless: Browserless, another: Browserless, db_pool: asyncpg.Pool,
    redis: redis_asyncio.Redis,
) -> None:  # fmt: skip
    agent_id, email, key = await _chatting_developer(browserless, another, db_pool)
    assert await session_keys.revoke_expired(db_pool, redis) == 0  # not expired yet
    later = int(time.time() * 1000) + 2 * 3600 * 1000
    assert await session_keys.revoke_expired(db_pool, redis, now_ms=later) >= 1
    assert await redis.zscore(keyspace.PLAYGROUND_KEY_EXPIRIES, str(key["id"])) is None
    [key] = await _session_keys(db_pool, email)
    assert key["revoked_at"] is not None
    # The next playground call mints a new key instead of using the swept one... once the
    # sealed copy is gone too, as it is at expiry (its Redis TTL is the key's lifetime).
    user_id = await user_id_of(db_pool, email)
    await redis.delete(keyspace.playground_key(key["redis_shard"], str(user_id)))
    assert (await _chat(browserless, agent_id, "again"))[0] == 200
    keys = await _session_keys(db_pool, email)
    assert len(keys) == 2
    assert keys[1]["revoked_at"] is None
