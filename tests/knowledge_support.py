"""What the knowledge end-to-end tests share: an in-process ingester (the worker's own code on
the session's Postgres and Redis, the local model) and a published agent with one ready file."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import redis.asyncio as redis_asyncio
from prometheus_client import CollectorRegistry

from common.knowledge.embedding import Embedder
from common.knowledge.local_embedder import LocalEmbedder
from control_plane.knowledge.ingest import KnowledgeIngester, KnowledgeMetrics
from control_plane.knowledge.settings import KnowledgeBaseSettings
from tests.control_plane.agents import helpers as agents
from tests.control_plane.agents.helpers import config
from tests.control_plane.api_client import bearer, register


@contextlib.asynccontextmanager
async def knowledge_ingester(
    db: asyncpg.Pool, redis_url: str, embedder: Embedder | None = None
) -> AsyncIterator[KnowledgeIngester]:
    """The ingester with `embedder` (default: the local model), closed with it."""
    redis = redis_asyncio.Redis.from_url(redis_url)
    embedder = embedder or LocalEmbedder()
    settings = KnowledgeBaseSettings.from_env({})
    try:
        yield KnowledgeIngester(
            db, redis, embedder, settings, KnowledgeMetrics(CollectorRegistry())
        )
    finally:
        await embedder.aclose()
        await redis.aclose()


async def developer_key(api: httpx.AsyncClient) -> str:
    developer = await register(api, "developer")
    response = await api.post(
        "/api/v1/developers/keys", headers=bearer(developer["access_token"]), json={"name": "kb"}
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


async def ready_agent(
    api: httpx.AsyncClient, ingester: KnowledgeIngester, text: str, *, prompt: str,
    knowledge: dict[str, Any] | None = None, **settings: Any,
) -> tuple[str, str]:  # fmt: skip
    """A published agent (`settings` over the test config, the prompt leak guard off unless
    given) with one ready text file and knowledge on; returns (agent id, a developer's key)."""
    creator = bearer((await register(api, "creator"))["access_token"])
    agent_id = await agents.publish_agent(
        api, creator, name="Northwind support",
        config=config(system_prompt=prompt, **({"leak_guard": False} | settings),
                      knowledge={"enabled": True, **(knowledge or {})}),
    )  # fmt: skip
    uploaded = await api.post(f"/api/v1/agents/{agent_id}/knowledge", headers=creator,
                              files=[("file", ("facts.txt", text.encode()))])  # fmt: skip
    assert uploaded.status_code == 202, uploaded.text
    while await ingester.process_next():
        pass
    listed = (await api.get(f"/api/v1/agents/{agent_id}/knowledge", headers=creator)).json()
    assert [f["status"] for f in listed["items"]] == ["ready"], listed
    return agent_id, await developer_key(api)
