"""Seed properties 7 (Draft Agent Inaccessibility) and 8 (Publish State Transition) end to
end: agents made and changed through the control plane's API, called through a real gateway
(same Postgres, Redis and key ring) in front of the mock provider. No sleeps: each API call
has written the gateway's Redis record before it answered."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.control_plane.agents.helpers import config, create_agent, creator_headers
from tests.control_plane.api_client import assert_error
from tests.factories import ApiKey, make_developer, make_key

AGENTS = "/api/v1/agents"


@dataclass(frozen=True)
class Stack:
    control: httpx.AsyncClient
    gateway: httpx.AsyncClient
    mock_url: str
    key: ApiKey


async def developer_key(db: asyncpg.Pool) -> ApiKey:
    developer = await make_developer(db, quota=10_000, tier="paid")
    return await make_key(db, developer)


async def call(stack: Stack, agent_id: str, *, stream: bool = False) -> tuple[httpx.Response, str]:
    """One chat call through the gateway; returns it and the unique user message it sent."""
    marker = f"hello {uuid.uuid4().hex}"
    body: dict[str, Any] = {"messages": [{"role": "user", "content": marker}]}
    if stream:
        body["stream"] = True
    response = await stack.gateway.post(
        f"/proxy/v1/agents/{agent_id}/chat",
        json=body,
        headers={"X-AgentLink-Key": stack.key.plaintext},
    )
    return response, marker


async def upstream_messages(stack: Stack, marker: str) -> list[dict[str, Any]] | None:
    """The messages the mock provider received with the call that sent `marker`."""
    recorded = (await stack.gateway.get(f"{stack.mock_url}/_mock/requests")).json()
    for entry in reversed(recorded):
        messages = entry["body"].get("messages") or []
        if messages and messages[-1].get("content") == marker:
            return list(messages)
    return None


async def assert_serves(stack: Stack, agent_id: str, prompt: str, *, stream: bool = False) -> None:
    response, marker = await call(stack, agent_id, stream=stream)
    assert response.status_code == 200, response.text
    assert prompt not in response.text
    messages = await upstream_messages(stack, marker)
    assert messages is not None, "the provider never saw the call"
    assert messages[0]["role"] == "system"
    # The creator's prompt, first, inside its version's leak-guard canary frame.
    assert messages[0]["content"].split("\n")[1:-1] == prompt.split("\n")


async def assert_refused(stack: Stack, agent_id: str, *, stream: bool = False) -> None:
    response, marker = await call(stack, agent_id, stream=stream)
    assert_error(response, 404, "40401")
    assert await upstream_messages(stack, marker) is None


def stack_for(control_url: str, gateway_url: str, mock_url: str, key: ApiKey) -> Stack:
    return Stack(
        httpx.AsyncClient(base_url=control_url),
        httpx.AsyncClient(base_url=gateway_url, timeout=10),
        mock_url,
        key,
    )


async def test_the_lifecycle_through_the_gateway(
    control_url: str, gateway_url: str, mock_provider_url: str, db_pool: asyncpg.Pool
) -> None:
    stack = stack_for(control_url, gateway_url, mock_provider_url, await developer_key(db_pool))
    async with stack.control, stack.gateway:
        headers = await creator_headers(stack.control)
        first = config(system_prompt=f"You are a pirate. {uuid.uuid4().hex}")
        agent_id = (await create_agent(stack.control, headers, config=first))["id"]
        await assert_refused(stack, agent_id)  # a draft
        await assert_refused(stack, agent_id, stream=True)

        published = await stack.control.post(f"{AGENTS}/{agent_id}/publish", headers=headers)
        assert published.status_code == 200
        await assert_serves(stack, agent_id, first["system_prompt"])

        second = f"You are a poet. {uuid.uuid4().hex}"
        updated = await stack.control.put(
            f"{AGENTS}/{agent_id}", headers=headers, json={"config": {"system_prompt": second}}
        )
        assert updated.json()["version"] == 2
        await assert_serves(stack, agent_id, second)
        await assert_serves(stack, agent_id, second, stream=True)

        rolled = await stack.control.post(
            f"{AGENTS}/{agent_id}/versions/1/rollback", headers=headers
        )
        assert rolled.json()["version"] == 3
        await assert_serves(stack, agent_id, first["system_prompt"])

        await stack.control.post(f"{AGENTS}/{agent_id}/unpublish", headers=headers)
        await assert_refused(stack, agent_id)
        await stack.control.post(f"{AGENTS}/{agent_id}/publish", headers=headers)
        await assert_serves(stack, agent_id, first["system_prompt"])


@settings(max_examples=8, deadline=None)
@given(
    # Any text a JSON body can carry: the API refuses NUL and lone surrogates with a 400.
    prompt=st.text(
        st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=300
    ).filter(str.strip),
    stream=st.booleans(),
    updates=st.integers(0, 2),
)
async def test_property_7_draft_agent_inaccessibility(  # noqa: PLR0917
    control_url: str,
    gateway_url: str,
    mock_provider_url: str,
    db_pool: asyncpg.Pool,
    prompt: str,
    stream: bool,
    updates: int,
) -> None:
    """Property 7: Draft Agent Inaccessibility. Whatever its config and however often it was
    edited, a draft is refused by the gateway with 404 `40401` and never reaches the
    provider."""
    stack = stack_for(control_url, gateway_url, mock_provider_url, await developer_key(db_pool))
    async with stack.control, stack.gateway:
        headers = await creator_headers(stack.control)
        agent_id = (
            await create_agent(stack.control, headers, config=config(system_prompt=prompt))
        )["id"]
        await assert_refused(stack, agent_id, stream=stream)
        for _ in range(updates):
            await stack.control.put(
                f"{AGENTS}/{agent_id}", headers=headers, json={"config": {"temperature": 1.0}}
            )
            await assert_refused(stack, agent_id, stream=stream)
        # Unpublishing a draft does not make it callable either.
        await stack.control.post(f"{AGENTS}/{agent_id}/unpublish", headers=headers)
        await assert_refused(stack, agent_id, stream=stream)


operations = st.lists(st.sampled_from(["publish", "unpublish", "update"]), min_size=1, max_size=6)


@settings(max_examples=8, deadline=None)
@given(steps=operations)
async def test_property_8_publish_state_transition(
    control_url: str,
    gateway_url: str,
    mock_provider_url: str,
    db_pool: asyncpg.Pool,
    steps: list[str],
) -> None:
    """Property 8: Publish State Transition. After any sequence of publish, unpublish and
    update, the very next gateway call matches the state the API answered with: an active
    agent is served with its current system prompt first, any other is 404 `40401`."""
    stack = stack_for(control_url, gateway_url, mock_provider_url, await developer_key(db_pool))
    async with stack.control, stack.gateway:
        headers = await creator_headers(stack.control)
        prompt = f"Prompt {uuid.uuid4().hex}"
        agent_id = (
            await create_agent(stack.control, headers, config=config(system_prompt=prompt))
        )["id"]
        status = "draft"
        for step in steps:
            if step == "update":
                prompt = f"Prompt {uuid.uuid4().hex}"
                response = await stack.control.put(
                    f"{AGENTS}/{agent_id}",
                    headers=headers,
                    json={"config": {"system_prompt": prompt}},
                )
            else:
                response = await stack.control.post(f"{AGENTS}/{agent_id}/{step}", headers=headers)
            assert response.status_code == 200, response.text
            if step == "publish":
                status = "active"
            elif step == "unpublish" and status == "active":
                status = "inactive"
            assert response.json()["status"] == status
            if status == "active":
                assert response.json()["published_at"] is not None
                await assert_serves(stack, agent_id, prompt)
            else:
                await assert_refused(stack, agent_id)
