"""Knowledge agents end to end beyond the OpenAI format, over real HTTP with the official SDKs:
an agent whose model is on the Anthropic (or Gemini) provider gets the passages in that
provider's system field (Anthropic's `system`, Gemini's `systemInstruction`: after the
creator's prompt, before the developer's system text), JSON and streamed, called through the
OpenAI SDK and (Anthropic) through the gateway's Messages API, the Anthropic SDK; and
the creator's opt-in guard of retrieved text catches a passage the model echoes across stream
chunk boundaries and inside tool-call arguments, as the prompt guard does, and so do MCP
tool calls of the agent."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anthropic
import asyncpg
import httpx
import pytest
import pytest_asyncio

from common.tool_names import tool_name
from control_plane.knowledge.ingest import KnowledgeIngester
from devstack.servers import free_port
from gateway.leak_guard import WITHHELD_NOTICE
from gateway.leak_guard.json_text import decode_escapes
from mock_provider.controls import render_directive
from tests.gateway.helpers import agent_sdk, assert_error, chat_url, every_provider_at
from tests.gateway.mcp.helpers import mcp_client, text_of
from tests.knowledge_support import knowledge_ingester, ready_agent
from tests.processes import Servers, gateway_env, serve_gateway

PROMPT = "You are the Halden furniture support assistant. Be brief. KNOWLEDGE-PROVIDERS-PROMPT"
FACT = (
    "The emergency override code for the Halden standing desk is seven four one nine, and it"
    " must only be given to certified technicians after they show their badge."
)
QUESTION = "What is the override code of the Halden standing desk?"
DEVELOPER = "DEVELOPER-SYSTEM-TEXT"
MODELS = {"openai": "mock-model", "anthropic": "claude-mock", "google": "gemini-mock"}
# Spans of the passage, none of them in the prompt: any of them reaching the client is a leak.
LEAKED = ("seven four one nine", "emergency override code", "certified technicians")


@pytest.fixture(scope="module")
def gateway_url(servers: Servers, database_url: str, mock_provider_url: str) -> Iterator[str]:
    # Long timeouts: the first retrieval starts the embedding service and loads the model.
    slow = {name: "30" for name in ("UPSTREAM_TIMEOUT_S", "STREAM_FIRST_BYTE_TIMEOUT_S",
                                    "STREAM_IDLE_TIMEOUT_S")}  # fmt: skip
    env = gateway_env(database_url, servers.redis_url, mock_provider_url,
                      **every_provider_at(mock_provider_url), **slow)  # fmt: skip
    with serve_gateway(env) as url:
        yield url


Agents = Callable[..., Awaitable[tuple[str, str]]]


@pytest_asyncio.fixture(scope="module")
async def agents(
    db_pool: asyncpg.Pool, servers: Servers, control_url: str
) -> AsyncIterator[Agents]:
    """`agents(provider, guarded, tag)`: (agent id, key) of an agent on that provider with FACT
    as its one ready file and `knowledge.leak_guard` as given; made once per module (another
    `tag`, another agent and developer)."""
    made: dict[tuple[str, bool, str], tuple[str, str]] = {}
    async with (
        knowledge_ingester(db_pool, servers.redis_url) as ingester,
        httpx.AsyncClient(base_url=control_url, timeout=30) as api,
    ):

        async def agent(provider: str, guarded: bool = False, tag: str = "") -> tuple[str, str]:
            if (provider, guarded, tag) not in made:
                made[provider, guarded, tag] = await _ready(api, ingester, provider, guarded)
            return made[provider, guarded, tag]

        yield agent


async def _ready(
    api: httpx.AsyncClient, ingester: KnowledgeIngester, provider: str, guarded: bool
) -> tuple[str, str]:
    return await ready_agent(api, ingester, FACT, prompt=PROMPT, provider=provider,
                             model=MODELS[provider], knowledge={"leak_guard": guarded})  # fmt: skip


async def last_request(mock_url: str, path: str, marker: str) -> dict[str, Any]:
    """The body of the last request to a path starting with `path` that the mock received
    with `marker` in it."""
    async with httpx.AsyncClient(timeout=30) as http:
        requests = (await http.get(f"{mock_url}/_mock/requests")).json()
    return next(
        r["body"]
        for r in reversed(requests)
        if r["path"].startswith(path) and marker in str(r["body"])
    )


# Where each provider's request keeps its system text, and its turns.
SYSTEM_FIELDS: dict[str, tuple[str, Callable[[dict[str, Any]], list[str]], str]] = {
    "anthropic": ("/v1/messages", lambda body: [b["text"] for b in body["system"]], "messages"),
    "google": ("/v1beta/models/",
               lambda body: [p["text"] for p in body["systemInstruction"]["parts"]], "contents"),
}  # fmt: skip


def assert_injected_in_system(provider: str, body: dict[str, Any], developer: str) -> None:
    """The provider's own system field holds the prompt, the passages, then the developer's
    text; the turns hold only the user's message."""
    _, system_texts, turns = SYSTEM_FIELDS[provider]
    texts = system_texts(body)
    assert len(texts) == 3, texts
    assert texts[0] == PROMPT
    assert texts[1].startswith("Excerpts from this assistant's knowledge base")
    assert "<<<KNOWLEDGE\n[1] from facts.txt\n" + FACT in texts[1]
    assert texts[1].endswith("KNOWLEDGE>>>")
    assert texts[2] == developer
    assert [turn["role"] for turn in body[turns]] == ["user"]
    assert "KNOWLEDGE" not in str(body[turns])


def assert_echoed_in_order(echoed: str, developer: str) -> None:
    """The mock echoes its system text: prompt, passage, developer's text, in that order."""
    assert echoed.index(PROMPT) < echoed.index(FACT) < echoed.index(developer)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", sorted(SYSTEM_FIELDS))
async def test_the_providers_system_field_gets_the_passages_openai_sdk(
    gateway_url: str, mock_provider_url: str, agents: Agents, provider: str, stream: bool
) -> None:
    agent_id, key = await agents(provider)
    developer = f"{DEVELOPER}-openai-{provider}-{stream}"
    messages: Any = [{"role": "system", "content": developer},
                     {"role": "user", "content": f"{QUESTION} [[mock echo_system]]"}]  # fmt: skip
    async with agent_sdk(gateway_url, agent_id, key) as client:
        if stream:
            chunks = await client.chat.completions.create(
                model="ignored", messages=messages, stream=True
            )
            echoed = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        else:
            reply = await client.chat.completions.create(model="ignored", messages=messages)
            echoed = reply.choices[0].message.content or ""
    assert_echoed_in_order(echoed, developer)
    body = await last_request(mock_provider_url, SYSTEM_FIELDS[provider][0], developer)
    assert_injected_in_system(provider, body, developer)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_an_anthropic_model_gets_the_passages_in_its_system_field_anthropic_sdk(
    gateway_url: str, mock_provider_url: str, agents: Agents, stream: bool
) -> None:
    agent_id, key = await agents("anthropic")
    developer = f"{DEVELOPER}-anthropic-{stream}"
    question: Any = [{"role": "user", "content": f"{QUESTION} [[mock echo_system]]"}]
    async with anthropic.AsyncAnthropic(
        base_url=f"{gateway_url}/proxy/v1/agents/{agent_id}", api_key=key, max_retries=0
    ) as client:
        if stream:
            async with client.messages.stream(
                model="any", max_tokens=300, system=developer, messages=question
            ) as events:
                echoed = "".join([text async for text in events.text_stream])
        else:
            message = await client.messages.create(
                model="any", max_tokens=300, system=developer, messages=question
            )
            echoed = "".join(block.text for block in message.content if block.type == "text")
    assert_echoed_in_order(echoed, developer)
    body = await last_request(mock_provider_url, "/v1/messages", developer)
    assert_injected_in_system("anthropic", body, developer)


async def ask(
    gateway_url: str, agent_id: str, key: str, directive: str, *, stream: bool
) -> tuple[str, str, str | None]:
    """One call with a tool offered: (text, every tool call's arguments, finish reason)."""
    messages: Any = [{"role": "user", "content": f"{QUESTION} {directive}"}]
    tools: Any = [{"type": "function",
                   "function": {"name": "search", "parameters": {"type": "object"}}}]  # fmt: skip
    async with agent_sdk(gateway_url, agent_id, key) as client:
        if not stream:
            answer = await client.chat.completions.create(
                model="ignored", messages=messages, tools=tools
            )
            message = answer.choices[0].message
            arguments = "".join(
                call.function.arguments  # type: ignore[union-attr]
                for call in message.tool_calls or []
            )
            return message.content or "", arguments, answer.choices[0].finish_reason
        text, arguments, finish = "", "", None
        chunks = await client.chat.completions.create(
            model="ignored", messages=messages, tools=tools, stream=True
        )
        async for chunk in chunks:
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            text += delta.content or ""
            for call in delta.tool_calls or []:
                arguments += (call.function.arguments or "") if call.function else ""
            finish = chunk.choices[0].finish_reason or finish
        return text, arguments, finish


# The passage as the model's answer, cut into many chunks (boundaries inside words), or as a
# tool call's arguments (JSON-escaped, split across argument deltas).
IN_TEXT = {"reply": f"Sure: {FACT}", "chunks": "37"}
IN_ARGUMENTS = {"reply": f"Sure: {FACT}", "tool_call": "search", "chunks": "29"}
DIRECTIVES = [
    pytest.param(render_directive(IN_TEXT), id="in-text"),
    pytest.param(render_directive(IN_ARGUMENTS), id="in-tool-arguments"),
]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("provider", sorted(MODELS))
@pytest.mark.parametrize("directive", DIRECTIVES)
async def test_a_guarded_passage_echoed_by_the_model_is_withheld(
    gateway_url: str, agents: Agents, provider: str, stream: bool, directive: str
) -> None:
    agent_id, key = await agents(provider, guarded=True)
    text, arguments, finish = await ask(gateway_url, agent_id, key, directive, stream=stream)
    everything = text + arguments
    for quote in LEAKED:
        assert quote not in everything
        assert quote not in decode_escapes(everything)
    assert WITHHELD_NOTICE in text
    assert finish == "content_filter"


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("directive", DIRECTIVES)
async def test_an_unguarded_passage_is_passed_through(
    gateway_url: str, agents: Agents, stream: bool, directive: str
) -> None:
    """The control: the same answers reach the client when the creator did not opt in (the
    prompt guard is off for these agents, so only the passage guard could withhold them)."""
    agent_id, key = await agents("anthropic", guarded=False)
    text, arguments, finish = await ask(gateway_url, agent_id, key, directive, stream=stream)
    assert FACT in text + decode_escapes(arguments)
    assert WITHHELD_NOTICE not in text
    assert finish != "content_filter"


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_a_guarded_passage_is_withheld_from_the_anthropic_sdk_and_not_charged(
    gateway_url: str, agents: Agents, stream: bool
) -> None:
    """The gateway's Messages API: the same guard, Anthropic's refusal, and no charge for a
    withheld answer (as for a withheld prompt)."""
    agent_id, key = await agents("anthropic", guarded=True)
    question: Any = [{"role": "user", "content": f"{QUESTION} {render_directive(IN_TEXT)}"}]
    async with anthropic.AsyncAnthropic(
        base_url=f"{gateway_url}/proxy/v1/agents/{agent_id}", api_key=key, max_retries=0
    ) as client:
        if stream:
            async with client.messages.stream(
                model="any", max_tokens=300, messages=question
            ) as events:
                deltas = [event async for event in events if event.type == "message_delta"]
                message = await events.get_final_message()
            usage = deltas[-1].usage
        else:
            message = await client.messages.create(model="any", max_tokens=300, messages=question)
            usage = message.usage  # type: ignore[assignment]
    everything = message.model_dump_json()
    for quote in LEAKED:
        assert quote not in everything
    assert WITHHELD_NOTICE in "".join(b.text for b in message.content if b.type == "text")
    assert message.stop_reason == "refusal"
    assert (usage.model_extra or {})["cost_units"] == 0


@pytest.mark.parametrize("guarded", [False, True], ids=["echoed", "guarded"])
async def test_an_mcp_tool_call_of_a_knowledge_agent_carries_and_guards_the_passages(
    gateway_url: str, agents: Agents, guarded: bool
) -> None:
    """tools/call (the official MCP client) runs the chat pipeline: the passages after the
    prompt, and the creator's guard over them."""
    agent_id, key = await agents("openai", guarded=guarded)
    directive = render_directive(IN_TEXT) if guarded else "[[mock echo_system]]"
    async with mcp_client(gateway_url, key) as client:
        result = await client.call_tool(
            tool_name("Northwind support", agent_id), {"prompt": f"{QUESTION} {directive}"}
        )
    text = text_of(result)
    if guarded:
        assert not [quote for quote in LEAKED if quote in text]
        assert WITHHELD_NOTICE in text
    else:
        assert not result.is_error, text
        assert text.index(PROMPT) < text.index(FACT)


@pytest.fixture(scope="module")
def embeddings_down_url(
    servers: Servers, database_url: str, mock_provider_url: str
) -> Iterator[str]:
    """A gateway whose embeddings endpoint (EMBEDDING_BACKEND=openai) does not answer."""
    env = gateway_env(database_url, servers.redis_url, mock_provider_url,
                      EMBEDDING_BACKEND="openai", EMBEDDING_API_KEY="mock-key",
                      EMBEDDING_BASE_URL=f"http://127.0.0.1:{free_port()}/v1")  # fmt: skip
    with serve_gateway(env) as url:
        yield url


@pytest.fixture(scope="module")
def database_down_url(servers: Servers, mock_provider_url: str) -> Iterator[str]:
    """A gateway whose Postgres does not answer (admission is Redis's; the agent's config,
    read once per version, is not)."""
    unreachable = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    with serve_gateway(gateway_env(unreachable, servers.redis_url, mock_provider_url)) as url:
        yield url


def run_sql(database_url: str, *statements: str) -> None:
    """Statements on a connection of their own, from sync code (a thread with its own loop)."""

    async def run() -> None:
        connection = await asyncpg.connect(database_url)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, run()).result()


@pytest.fixture(scope="module")
def chunks_unreadable_url(
    servers: Servers, database_url: str, mock_provider_url: str
) -> Iterator[str]:
    """A gateway that reads agent configs but may not read knowledge chunks (a role with no
    grant on them): retrieval's query itself fails."""
    role = f"no_chunks_{uuid.uuid4().hex[:8]}"
    run_sql(database_url, f"CREATE ROLE {role} LOGIN", f"GRANT SELECT ON agent_versions TO {role}")
    parts = urlsplit(database_url)
    url = urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))
    try:
        with serve_gateway(gateway_env(url, servers.redis_url, mock_provider_url)) as gateway:
            yield gateway
    finally:
        run_sql(database_url, f"DROP OWNED BY {role}", f"DROP ROLE {role}")


async def trials_remaining(gateway_url: str, agent_id: str, key: str) -> int:
    """The developer's free calls of the agent left after one more successful call."""
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            chat_url(gateway_url, agent_id), headers={"Authorization": f"Bearer {key}"},
            json={"messages": [{"role": "user", "content": QUESTION}]},
        )  # fmt: skip
    assert response.status_code == 200, response.text
    return int(response.headers["x-agentlink-trials-remaining"])


@pytest.mark.parametrize(
    ("failing", "says"),
    [("embeddings_down_url", "knowledge search"), ("chunks_unreadable_url", "knowledge base"),
     ("database_down_url", "configuration")],
)  # fmt: skip
async def test_a_failed_retrieval_is_a_clean_503_that_costs_nothing(
    gateway_url: str, agents: Agents, request: pytest.FixtureRequest, failing: str, says: str
) -> None:
    """The question cannot be embedded, the chunks cannot be searched, or Postgres is down
    altogether (a 500 before): 503 `50302` (JSON and stream, before any byte), an error body
    without the question or any passage, and no free call spent on it."""
    failing_url = request.getfixturevalue(failing)
    agent_id, key = await agents("openai", tag=failing)
    before = await trials_remaining(gateway_url, agent_id, key)
    async with httpx.AsyncClient(timeout=30) as http:
        for stream in (False, True):
            response = await http.post(
                chat_url(failing_url, agent_id), headers={"Authorization": f"Bearer {key}"},
                json={"stream": stream, "messages": [{"role": "user", "content": QUESTION}]},
            )  # fmt: skip
            body = assert_error(response, 503, "50302")
            assert says in body["error"]["message"]
            for text in (QUESTION, "Halden", *LEAKED):
                assert text not in response.text
    assert await trials_remaining(gateway_url, agent_id, key) == before - 1
