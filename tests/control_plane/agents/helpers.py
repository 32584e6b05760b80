"""Helpers for the agent API tests."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import httpx

from tests.control_plane.api_client import bearer, register


def config(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "system_prompt": f"You are a careful assistant. PROMPT-{uuid.uuid4().hex}.",
        "provider": "openai",
        "model": "mock-model",
        "temperature": 0.3,
    }
    base.update(overrides)
    return base


def agent_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Pirate translator",
        "description": "Speaks like a pirate.",
        "category": "Writing",
        "price_per_call": "0.01",
        "config": config(),
    }
    body.update(copy.deepcopy(overrides))
    return body


async def creator_headers(client: httpx.AsyncClient) -> dict[str, str]:
    session = await register(client, "creator")
    return bearer(session["access_token"])


async def create_agent(
    client: httpx.AsyncClient, headers: dict[str, str], **overrides: Any
) -> dict[str, Any]:
    response = await client.post("/api/v1/agents", headers=headers, json=agent_body(**overrides))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def publish_agent(
    client: httpx.AsyncClient, headers: dict[str, str], **overrides: Any
) -> str:
    """A new agent (`agent_body` with `overrides`), published; returns its id."""
    agent_id = str((await create_agent(client, headers, **overrides))["id"])
    published = await client.post(f"/api/v1/agents/{agent_id}/publish", headers=headers)
    assert published.status_code == 200, published.text
    return agent_id


def full_config(submitted: dict[str, Any]) -> dict[str, Any]:
    """A submitted config with the defaults the API fills in."""
    knowledge = {
        "enabled": False,
        "file_ids": [],
        "chunk_size": 1000,
        "chunk_overlap": 200,
        "top_k": 5,
        "leak_guard": False,
        **submitted.get("knowledge", {}),
    }
    return {
        "temperature": None,
        "max_tokens": None,
        "top_p": None,
        "fallbacks": [],
        "leak_guard": True,
        "prompt_cache": False,
        **submitted,
        "knowledge": knowledge,
    }
