"""A control plane with small knowledge limits, on the session's Postgres and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.control_plane.agents.helpers import create_agent, creator_headers
from tests.processes import serve_api

MAX_FILE_BYTES = 200_000
MAX_FILES_PER_AGENT = 4


@pytest.fixture(scope="session")
def knowledge_env(control_env: dict[str, str]) -> dict[str, str]:
    return {
        **control_env,
        "KNOWLEDGE_MAX_FILE_BYTES": str(MAX_FILE_BYTES),
        "KNOWLEDGE_MAX_FILES_PER_AGENT": str(MAX_FILES_PER_AGENT),
        "KNOWLEDGE_MAX_FILES_PER_UPLOAD": "3",
        "KNOWLEDGE_EMBED_BATCH": "4",
    }


@pytest.fixture(scope="session")
def knowledge_control_url(knowledge_env: dict[str, str]) -> Iterator[str]:
    with serve_api(knowledge_env) as url:
        yield url


@pytest_asyncio.fixture
async def client(knowledge_control_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=knowledge_control_url, timeout=30) as client:
        yield client


class Creator:
    def __init__(self, client: httpx.AsyncClient, headers: dict[str, str], agent: dict[str, Any]):
        self.client = client
        self.headers = headers
        self.agent = agent

    @property
    def agent_id(self) -> str:
        return str(self.agent["id"])

    @property
    def url(self) -> str:
        return f"/api/v1/agents/{self.agent_id}/knowledge"

    async def upload(self, *files: tuple[str, bytes]) -> httpx.Response:
        return await self.client.post(
            self.url, headers=self.headers, files=[("file", file) for file in files]
        )


@pytest_asyncio.fixture
async def creator(client: httpx.AsyncClient) -> AsyncIterator[Creator]:
    headers = await creator_headers(client)
    creator = Creator(client, headers, await create_agent(client, headers))
    yield creator
    # Nothing left queued: worker processes started by other tests share this database.
    await client.delete(creator.url, headers=headers)
