"""Knowledge bases end to end, over real HTTP: a creator uploads a PDF, the worker makes it
ready, and a developer's call through the gateway (the official OpenAI SDK) reaches the mock
provider with the right passage as one system message after the creator's prompt and before
the developer's messages; the mock echoes its system messages back. Plain agents beside it
never touch the knowledge machinery."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import httpx
import openai
import orjson
import pytest
import pytest_asyncio
import redis.asyncio as redis_asyncio
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from common.json_logging import JsonFormatter
from control_plane.knowledge.ingest import KnowledgeIngester
from gateway.tracing import Tracing
from tests.control_plane.agents import helpers as agents
from tests.control_plane.agents.helpers import config
from tests.control_plane.api_client import bearer, register
from tests.control_plane.knowledge.pdfs import make_pdf
from tests.gateway.helpers import agent_sdk
from tests.knowledge_support import developer_key, knowledge_ingester, ready_agent
from tests.processes import Servers, gateway_env, serve_gateway

PROMPT = "You are the Northwind support assistant. Be brief. KNOWLEDGE-E2E-PROMPT"
# Three pages, each longer than half a chunk: three chunks, one per page.
PAGES = [
    "Returns policy. Unused items may be returned within 30 days of delivery for a refund. "
    + "Refunds are paid to the original payment method once the parcel is inspected. " * 6,
    "Warranty. The Tern vacuum flask, model code QF-2231, carries a warranty of 36 months "
    "from the date of purchase. Its double steel wall keeps drinks hot for twelve hours. "
    + "A warranty claim needs the receipt and a photo of the fault. "
    * 6,
    "Shipping. Orders leave the Rotterdam warehouse within two business days. "
    + "Tracking numbers are sent by email as soon as the courier collects the parcel. " * 6,
]


@dataclass(frozen=True)
class Stack:
    gateway_url: str
    mock_url: str


@pytest.fixture(scope="module")
def stack(servers: Servers, database_url: str, mock_provider_url: str) -> Iterator[Stack]:
    # The default timeouts: the first retrieval loads the local embedding model.
    defaults = {name: "30" for name in ("UPSTREAM_TIMEOUT_S", "STREAM_FIRST_BYTE_TIMEOUT_S",
                                        "STREAM_IDLE_TIMEOUT_S")}  # fmt: skip
    env = gateway_env(database_url, servers.redis_url, mock_provider_url, **defaults)
    with serve_gateway(env) as gateway_url:
        yield Stack(gateway_url, mock_provider_url)


@pytest_asyncio.fixture
async def ingester(db_pool: asyncpg.Pool, servers: Servers) -> AsyncIterator[KnowledgeIngester]:
    async with knowledge_ingester(db_pool, servers.redis_url) as ingester:
        yield ingester


async def publish_agent(api: httpx.AsyncClient, auth: dict[str, str], **settings: object) -> str:
    return await agents.publish_agent(
        api,
        auth,
        name="Northwind support",
        config=config(system_prompt=PROMPT, leak_guard=False, **settings),
    )


async def knowledge_retrievals(client: httpx.AsyncClient, gateway_url: str) -> float:
    metrics = (await client.get(f"{gateway_url}/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("agentlink_gateway_knowledge_retrievals_total{")
    )


async def test_uploaded_pdf_is_injected_after_the_prompt(
    stack: Stack, control_url: str, ingester: KnowledgeIngester
) -> None:
    async with httpx.AsyncClient(base_url=control_url, timeout=30) as api:
        creator = bearer((await register(api, "creator"))["access_token"])
        agent_id = await publish_agent(api, creator)
        plain_agent_id = await publish_agent(api, creator)
        uploaded = await api.post(
            f"/api/v1/agents/{agent_id}/knowledge", headers=creator,
            files=[("file", ("handbook.pdf", make_pdf(PAGES), "application/pdf"))],
        )  # fmt: skip
        assert uploaded.status_code == 202, uploaded.text
        while await ingester.process_next():
            pass
        listed = (await api.get(f"/api/v1/agents/{agent_id}/knowledge", headers=creator)).json()
        assert [(f["filename"], f["status"]) for f in listed["items"]] == [
            ("handbook.pdf", "ready")
        ]
        enabled = await api.put(
            f"/api/v1/agents/{agent_id}", headers=creator,
            json={"config": {"knowledge": {"enabled": True}}},
        )  # fmt: skip
        assert enabled.status_code == 200, enabled.text
        api_key = await developer_key(api)

    async with httpx.AsyncClient(timeout=30) as http:
        before = await knowledge_retrievals(http, stack.gateway_url)
        async with agent_sdk(stack.gateway_url, plain_agent_id, api_key) as plain:
            reply = await plain.chat.completions.create(
                model="ignored", messages=[{"role": "user", "content": "Hi [[mock echo_system]]"}]
            )
        assert reply.choices[0].message.content == PROMPT
        assert await knowledge_retrievals(http, stack.gateway_url) == before  # paid nothing

        async with agent_sdk(stack.gateway_url, agent_id, api_key) as client:
            reply = await client.chat.completions.create(
                model="ignored",
                messages=[
                    {"role": "system", "content": "DEVELOPER-SYSTEM-MESSAGE"},
                    {"role": "user", "content": "How long is the warranty of the QF-2231 "
                                                "flask? [[mock echo_system]]"},
                ],
            )  # fmt: skip
        echoed = reply.choices[0].message.content or ""
        assert await knowledge_retrievals(http, stack.gateway_url) == before + 1

        requests = (await http.get(f"{stack.mock_url}/_mock/requests")).json()
    # The mock echoes its system messages in order: the prompt, the knowledge, the developer's.
    prompt_at, passage_at = echoed.index(PROMPT), echoed.index("warranty of 36 months")
    developer_at = echoed.index("DEVELOPER-SYSTEM-MESSAGE")
    assert prompt_at < passage_at < developer_at
    sent = next(
        r["body"] for r in reversed(requests) if "QF-2231" in orjson.dumps(r["body"]).decode()
    )
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["system", "system", "system", "user"]
    assert sent["messages"][0]["content"] == PROMPT
    knowledge = sent["messages"][1]["content"]
    assert "<<<KNOWLEDGE" in knowledge
    assert "KNOWLEDGE>>>" in knowledge
    first = knowledge.split("[1] from handbook.pdf\n", 1)[1]
    assert first.startswith("Warranty. The Tern vacuum flask")  # the best passage first
    assert "Rotterdam" not in knowledge  # the shipping page is not similar enough
    assert sent["messages"][2]["content"] == "DEVELOPER-SYSTEM-MESSAGE"


SECRET_FACT = (
    "The emergency override code for the Halden standing desk is seven four one nine, and it"
    " must only be given to certified technicians after they show their badge."
)


@pytest.mark.parametrize("guarded", [True, False])
async def test_the_creator_may_guard_passages_against_verbatim_leaks(
    stack: Stack, control_url: str, ingester: KnowledgeIngester, guarded: bool, logs: Records
) -> None:
    async with httpx.AsyncClient(base_url=control_url, timeout=30) as api:
        agent_id, key = await ready_agent(
            api, ingester, SECRET_FACT, prompt=PROMPT, knowledge={"leak_guard": guarded}
        )
    question = "What is the override code of the Halden standing desk?"
    directive = f'[[mock reply="Sure: {SECRET_FACT}"]]'
    async with agent_sdk(stack.gateway_url, agent_id, key) as client:
        reply = await client.chat.completions.create(
            model="ignored", messages=[{"role": "user", "content": f"{question} {directive}"}]
        )
    answer = reply.choices[0].message.content or ""
    if guarded:
        assert "seven four one nine" not in answer
        assert reply.choices[0].finish_reason == "content_filter"
    else:
        assert "seven four one nine" in answer
    # Retrieved text is creator content: never in a log line.
    assert "seven four one nine" not in logs.text()


async def test_enable_rag_off_switches_retrieval_off(
    stack: Stack, control_url: str, ingester: KnowledgeIngester, servers: Servers,
    db_pool: asyncpg.Pool,
) -> None:  # fmt: skip
    async with httpx.AsyncClient(base_url=control_url, timeout=30) as api:
        agent_id, key = await ready_agent(api, ingester, SECRET_FACT, prompt=PROMPT)
    redis = redis_asyncio.Redis.from_url(servers.redis_url)

    async def system_messages() -> str:
        async with agent_sdk(stack.gateway_url, agent_id, key) as client:
            reply = await client.chat.completions.create(
                model="ignored",
                messages=[{"role": "user", "content": "Halden desk code? [[mock echo_system]]"}],
            )
        return reply.choices[0].message.content or ""

    try:
        assert "seven four one nine" in await system_messages()
        await db_pool.execute("UPDATE feature_flags SET enabled = false WHERE key = 'enable_rag'")
        await redis.hset("ff:all", "enable_rag", "0")
        # The gateway's flag snapshot follows within a refresh (FEATURE_FLAGS_REFRESH_S 0.1 s
        # in the tests): five of them.
        await asyncio.sleep(0.5)
        assert await system_messages() == PROMPT
    finally:
        await db_pool.execute("UPDATE feature_flags SET enabled = true WHERE key = 'enable_rag'")
        await redis.hset("ff:all", "enable_rag", "1")
        await redis.aclose()


async def retrievals_by_outcome(gateway_url: str) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=30) as http:
        metrics = (await http.get(f"{gateway_url}/metrics")).text
    prefix = 'agentlink_gateway_knowledge_retrievals_total{outcome="'
    return {
        line[len(prefix) :].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(prefix)
    }


async def test_an_identical_question_is_answered_from_the_cache_until_the_files_change(
    stack: Stack, control_url: str, ingester: KnowledgeIngester
) -> None:
    async with httpx.AsyncClient(base_url=control_url, timeout=30) as api:
        creator = bearer((await register(api, "creator"))["access_token"])
        agent_id = await publish_agent(api, creator, knowledge={"enabled": True})

        async def upload(name: str, text: str) -> None:
            uploaded = await api.post(f"/api/v1/agents/{agent_id}/knowledge", headers=creator,
                                      files=[("file", (name, text.encode()))])  # fmt: skip
            assert uploaded.status_code == 202, uploaded.text
            while await ingester.process_next():
                pass

        await upload("desk.txt", SECRET_FACT)
        key = await developer_key(api)
        question = "What is the override code of the Halden standing desk? [[mock echo_system]]"

        async def ask(text: str) -> tuple[str, dict[str, float]]:
            async with agent_sdk(stack.gateway_url, agent_id, key) as client:
                reply = await client.chat.completions.create(
                    model="ignored", messages=[{"role": "user", "content": text}]
                )
            return reply.choices[0].message.content or "", await retrievals_by_outcome(
                stack.gateway_url
            )

        before = await retrievals_by_outcome(stack.gateway_url)
        first, after_first = await ask(question)
        again, after_again = await ask(question)
        assert "seven four one nine" in first
        assert again == first
        assert after_first["cached"] == before["cached"]
        assert after_again["cached"] == after_first["cached"] + 1
        assert after_again["injected"] == after_first["injected"]

        # Another question is no hit; nor is the same one once the files changed (a new
        # knowledge version): it sees the new file.
        _, after_other = await ask("Who may be given the Halden desk code? [[mock echo_system]]")
        assert after_other["cached"] == after_again["cached"]
        await upload("desk-update.txt", SECRET_FACT.replace("seven four one nine", "two eight"))
        changed, after_change = await ask(question)
        assert after_change["cached"] == after_other["cached"]
        assert "two eight" in changed


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        """Every record as the gateway writes it (JSON, with its extra fields)."""
        formatter = JsonFormatter()
        return "\n".join(formatter.format(record) for record in self.records)


@pytest.fixture
def logs(traced_stack: object, stack: Stack) -> Iterator[Records]:
    """Every record logged in this process (the gateways run in it), at DEBUG. Installed after
    the gateways started: each one's configure_logging replaces the root's handlers (and with
    them pytest's caplog handler)."""
    records, root = Records(), logging.getLogger()
    level = root.level
    root.addHandler(records)
    root.setLevel(logging.DEBUG)
    yield records
    root.removeHandler(records)
    root.setLevel(level)


@pytest.fixture(scope="module")
def traced_stack(
    servers: Servers, database_url: str, mock_provider_url: str
) -> Iterator[tuple[str, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    env = gateway_env(database_url, servers.redis_url, mock_provider_url,
                      UPSTREAM_TIMEOUT_S="30")  # fmt: skip
    with serve_gateway(env, tracing=Tracing.with_exporter(exporter)) as url:
        yield url, exporter


async def test_retrieved_text_is_in_no_log_span_metric_or_error_body(
    traced_stack: tuple[str, InMemorySpanExporter], control_url: str, mock_provider_url: str,
    ingester: KnowledgeIngester, logs: Records,
) -> None:  # fmt: skip
    gateway_url, exporter = traced_stack
    async with httpx.AsyncClient(base_url=control_url, timeout=30) as api:
        agent_id, key = await ready_agent(api, ingester, SECRET_FACT, prompt=PROMPT)
    question = "What is the override code of the Halden standing desk?"
    bodies = []
    async with agent_sdk(gateway_url, agent_id, key) as client:
        answered = await client.chat.completions.create(
            model="ignored", messages=[{"role": "user", "content": question}]
        )
        bodies.append(answered.model_dump_json())
        stream = await client.chat.completions.create(
            model="ignored", stream=True,
            messages=[{"role": "user", "content": f"{question} (streamed)"}],
        )  # fmt: skip
        bodies += [chunk.model_dump_json() async for chunk in stream]
        with pytest.raises(openai.BadRequestError) as rejected:  # the provider refuses it
            await client.chat.completions.create(
                model="ignored",
                messages=[{"role": "user", "content": f"{question} [[mock status=400]]"}],
            )
        bodies.append(rejected.value.response.text)
        with pytest.raises(openai.InternalServerError) as failed:  # and fails, 503
            await client.chat.completions.create(
                model="ignored",
                messages=[{"role": "user", "content": f"{question} [[mock status=503]]"}],
            )
        bodies.append(failed.value.response.text)
    async with httpx.AsyncClient(timeout=30) as http:
        sent = (await http.get(f"{mock_provider_url}/_mock/requests")).json()
        metrics = (await http.get(f"{gateway_url}/metrics")).text
    # The passage did go to the provider, with each of the four calls...
    assert sum(SECRET_FACT in orjson.dumps(r["body"]).decode() for r in sent) >= 4
    # ...and nowhere else.
    await asyncio.sleep(0.2)  # server spans end after the last byte
    spans = exporter.get_finished_spans()
    assert spans
    exported = "\n".join(span.to_json() for span in spans)
    logged = logs.text()
    assert "request_id" in logged  # the calls were logged (the access log, at INFO)
    for fragment in ("seven four one nine", "emergency override code", "certified technicians"):
        for where, text in (("spans", exported), ("metrics", metrics), ("logs", logged),
                            ("answers", "\n".join(bodies))):  # fmt: skip
            assert fragment not in text, where
