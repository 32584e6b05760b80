"""Admission through the gateway over real HTTP: keys, agents, trials, quota, rate limits and
the billing properties (seed properties 3, 4, 5, 6, 7, 12, 25, and 1 in its basic form). The
metering and rate-limit ones (3, 4, 6, 25 and bad bodies) run twice, through the `deployment`
fixture: on one Valkey and on the 3-primary Valkey cluster with REDIS_CLUSTER=true."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import openai
import orjson
import pytest
import redis.asyncio as redis_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common import keyspace
from crypto.api_keys import SHARD_COUNT, generate_api_key
from tests.factories import make_agent, revoke_key, set_agent_status, set_user_status
from tests.gateway.helpers import (
    NO_BREAKER,
    Caller,
    assert_error,
    chat,
    chat_url,
    gateway,
    in_band_error,
    make_caller,
    quota_units,
    trials_used,
    usage_events,
    wait_for_events,
)
from tests.processes import Deployment

PREMIUM = Decimal("0.05")  # 5 units at the default UNIT_PRICE of $0.01
MAX_BODY = 2048


@dataclass(frozen=True)
class Served:
    """A gateway under test and a client of the Redis it runs on, one node or the cluster:
    the metering and rate-limit properties hold on both (tests/conftest.py `deployment`)."""

    url: str
    redis: Any


@pytest.fixture(scope="module")
def billing_gateway(deployment: Deployment) -> Iterator[Served]:
    """A gateway for calls that fail on purpose: its breaker never opens (so injected 500s
    cannot turn later calls into 503s) and its body limit is small."""
    with gateway(deployment.env, GATEWAY_MAX_BODY_BYTES=str(MAX_BODY), **NO_BREAKER) as url:
        yield Served(url, deployment.redis)


@pytest.fixture(scope="module")
def served(deployment: Deployment, gateway_url: str) -> Iterator[Served]:
    """The session's gateway, or one on the cluster."""
    if deployment.kind == "single":
        yield Served(gateway_url, deployment.redis)
        return
    with gateway(deployment.env) as url:
        yield Served(url, deployment.redis)


def sdk(base_url: str, caller: Caller) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{base_url}/proxy/v1/agents/{caller.agent.agent_id}",
        api_key=caller.key.plaintext,
        max_retries=0,
    )


# -- Property 5: Authentication Correctness --------------------------------------------------


async def test_a_valid_key_with_quota_is_accepted(gateway_url: str, db_pool: asyncpg.Pool) -> None:
    caller = await make_caller(db_pool)
    async with sdk(gateway_url, caller) as client:
        completion = await client.chat.completions.create(
            model="x", messages=[{"role": "user", "content": "hi"}]
        )
    assert completion.choices[0].message.content == "Mock reply to: hi"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-AgentLink-Key": ""},
        {"X-AgentLink-Key": "ak_short"},
        {"X-AgentLink-Key": "ak_" + "a" * 31},
        {"X-AgentLink-Key": "ak_" + "a" * 33},
        {"X-AgentLink-Key": "ak_" + "a" * 31 + "-"},
        {"X-AgentLink-Key": "ak_" + "a" * 38},  # the current shape, its checksum wrong
        {"X-AgentLink-Key": "ak_" + "a" * 32},  # the legacy shape, never issued
        {"X-AgentLink-Key": "sk-" + "a" * 32},
        {"X-AgentLink-Key": "AK_" + "a" * 32},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": "Basic " + "ak_" + "a" * 32},
    ],
    ids=lambda headers: repr(headers)[:40],
)
async def test_a_malformed_or_missing_key_is_401(
    gateway_url: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, headers: dict[str, str]
) -> None:
    caller = await make_caller(db_pool)
    async with httpx.AsyncClient() as client:
        response = await client.post(
            chat_url(gateway_url, caller.agent.agent_id),
            headers=headers,
            json={"messages": [{"role": "user", "content": "hi"}]},
        )
    body = assert_error(response, 401, "40103")
    assert "ak_" not in body["error"]["message"]  # a key is never echoed


async def test_an_unknown_key_is_401(gateway_url: str, db_pool: asyncpg.Pool) -> None:
    caller = await make_caller(db_pool)
    unknown = generate_api_key(caller.shard).plaintext
    async with httpx.AsyncClient() as client:
        for _ in range(2):  # cold, then negatively cached
            assert_error(await chat(client, gateway_url, caller, key=unknown), 401, "40103")


async def test_a_key_revoked_before_its_first_use_is_401(
    gateway_url: str, db_pool: asyncpg.Pool
) -> None:
    caller = await make_caller(db_pool)
    await revoke_key(db_pool, caller.key.key_id)
    async with sdk(gateway_url, caller) as client:
        with pytest.raises(openai.AuthenticationError) as refused:
            await client.chat.completions.create(
                model="x", messages=[{"role": "user", "content": "hi"}]
            )
    assert refused.value.status_code == 401
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["code"] == "40103"


async def test_a_key_whose_hash_names_another_shard_is_401(
    gateway_url: str, db_pool: asyncpg.Pool
) -> None:
    """Keys are generated so that their hash names the owner's shard; one that does not was
    not made by us, even if it is in the table."""
    caller = await make_caller(db_pool)
    foreign = generate_api_key((caller.shard + 1) % SHARD_COUNT)
    await db_pool.execute(
        """INSERT INTO api_keys (user_id, key_hash, key_prefix, name)
           VALUES ($1, $2, $3, 'foreign')""",
        caller.developer.user_id,
        foreign.key_hash,
        foreign.prefix,
    )
    async with httpx.AsyncClient() as client:
        response = await chat(client, gateway_url, caller, key=foreign.plaintext)
    assert_error(response, 401, "40103")


async def test_exhausted_quota_is_429(
    gateway_url: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    caller = await make_caller(db_pool, quota=0, trials_used=3)
    async with httpx.AsyncClient() as client:
        response = await chat(client, gateway_url, caller)
    assert_error(response, 429, "42901")
    assert response.headers["x-quota-remaining"] == "0"
    assert response.headers["x-ratelimit-limit"] == "10"
    assert await usage_events(redis, caller) == []


async def test_a_premium_agent_is_never_called_below_its_price(
    gateway_url: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    caller = await make_caller(db_pool, quota=9, trials_used=3, price=PREMIUM)
    async with httpx.AsyncClient() as client:
        first = await chat(client, gateway_url, caller)
        assert first.status_code == 200
        assert first.headers["x-quota-remaining"] == "4"
        assert_error(await chat(client, gateway_url, caller), 429, "42901")
    [event] = await wait_for_events(redis, caller, 1)
    assert (event["billable"], event["charge"], event["units"]) == ("1", "quota", "5")
    assert await quota_units(redis, caller) == 4


# -- Property 25: Trial Quota Enforcement ----------------------------------------------------


async def test_three_free_trial_calls_per_developer_agent_pair(
    served: Served, db_pool: asyncpg.Pool
) -> None:
    caller = await make_caller(db_pool, quota=0)
    other_agent = await make_agent(db_pool)
    async with httpx.AsyncClient() as client:
        for agent_id in (caller.agent.agent_id, other_agent.agent_id):
            for _ in range(3):
                response = await chat(client, served.url, caller, agent_id=agent_id)
                assert response.status_code == 200, response.text
                assert response.headers["x-quota-remaining"] == "0"
            response = await chat(client, served.url, caller, agent_id=agent_id)
            assert_error(response, 429, "42901")
    events = await wait_for_events(served.redis, caller, 6)
    assert len(events) == 6
    assert {(event["charge"], event["units"], event["billable"]) for event in events} == {
        ("trial", "0", "1")
    }
    assert sorted(event["agent_id"] for event in events) == sorted(
        [caller.agent.agent_id] * 3 + [other_agent.agent_id] * 3
    )


async def test_quota_is_used_only_after_the_trials(served: Served, db_pool: asyncpg.Pool) -> None:
    caller = await make_caller(db_pool, quota=10)
    async with httpx.AsyncClient() as client:
        remaining = [
            (await chat(client, served.url, caller)).headers["x-quota-remaining"] for _ in range(5)
        ]
    assert remaining == ["10", "10", "10", "9", "8"]
    events = await wait_for_events(served.redis, caller, 5)
    assert [event["charge"] for event in events] == ["trial"] * 3 + ["quota"] * 2
    assert await quota_units(served.redis, caller) == 8
    assert await trials_used(served.redis, caller) == 3


async def test_trials_already_used_in_postgres_are_honoured(
    served: Served, db_pool: asyncpg.Pool
) -> None:
    caller = await make_caller(db_pool, quota=0, trials_used=2)
    async with httpx.AsyncClient() as client:
        assert (await chat(client, served.url, caller)).status_code == 200
        assert_error(await chat(client, served.url, caller), 429, "42901")


# -- Property 7: Draft Agent Inaccessibility -------------------------------------------------


@pytest.mark.parametrize("status", ["draft", "inactive", "suspended"])
async def test_an_agent_that_is_not_active_is_404(
    gateway_url: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis, status: str
) -> None:
    caller = await make_caller(db_pool, status=status)
    async with httpx.AsyncClient() as client:
        for _ in range(2):
            assert_error(await chat(client, gateway_url, caller), 404, "40401")
    assert await usage_events(redis, caller) == []
    assert await trials_used(redis, caller) == 0


@pytest.mark.parametrize(
    "agent_id",
    ["00000000-0000-4000-8000-000000000000", "not-a-uuid", "a" * 300, "%00"],
)
async def test_an_unknown_agent_is_404(
    gateway_url: str, db_pool: asyncpg.Pool, agent_id: str
) -> None:
    caller = await make_caller(db_pool)
    async with httpx.AsyncClient() as client:
        response = await chat(client, gateway_url, caller, agent_id=agent_id)
    assert_error(response, 404, "40401")


async def next_call_after(
    gateway_url: str, caller: Caller, change: Callable[[], Awaitable[object]]
) -> httpx.Response:
    """A call that succeeds, then `change`, then the next call, whose response is returned."""
    async with httpx.AsyncClient() as client:
        assert (await chat(client, gateway_url, caller)).status_code == 200
        await change()
        return await chat(client, gateway_url, caller)


async def test_unpublishing_takes_effect_on_the_next_request(
    gateway_url: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    caller = await make_caller(db_pool)
    agent_id = caller.agent.agent_id

    async def unpublish() -> None:  # as the control plane does: Postgres, then the Redis record
        await set_agent_status(db_pool, agent_id, "inactive")
        await redis.hset(keyspace.agent_record(agent_id), "status", "inactive")

    assert_error(await next_call_after(gateway_url, caller, unpublish), 404, "40401")


# -- Property 12: API Key Revocation Immediacy; user suspension ------------------------------


async def test_revocation_takes_effect_on_the_very_next_request(
    gateway_url: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    caller = await make_caller(db_pool)
    async with sdk(gateway_url, caller) as client:
        await client.chat.completions.create(
            model="x", messages=[{"role": "user", "content": "hi"}]
        )  # the key record is warm in Redis now
        await revoke_key(db_pool, caller.key.key_id)
        await redis.hset(
            keyspace.api_key_record(caller.shard, caller.key.key_hash), "status", "revoked"
        )
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(
                model="x", messages=[{"role": "user", "content": "hi"}]
            )


async def test_a_suspended_user_is_403(
    gateway_url: str, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    caller = await make_caller(db_pool)
    user_id = caller.developer.user_id

    async def suspend() -> None:
        await set_user_status(db_pool, user_id, "suspended")
        await redis.hset(keyspace.user_record(caller.shard, user_id), "status", "suspended")

    assert_error(await next_call_after(gateway_url, caller, suspend), 403, "40301")
    await wait_for_events(redis, caller, 1)
    assert len(await usage_events(redis, caller)) == 1


async def test_a_user_suspended_before_the_first_call_is_403(
    gateway_url: str, db_pool: asyncpg.Pool
) -> None:
    caller = await make_caller(db_pool)
    await set_user_status(db_pool, caller.developer.user_id, "suspended")
    async with httpx.AsyncClient() as client:
        assert_error(await chat(client, gateway_url, caller), 403, "40301")


# -- Property 6: Rate Limiting Enforcement ---------------------------------------------------


@dataclass
class Burst:
    ok: int
    refused: list[httpx.Response]


async def burst(urls: list[str], caller: Caller, calls: int) -> Burst:
    limits = httpx.Limits(max_connections=calls)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        responses = await asyncio.gather(
            *(chat(client, urls[index % len(urls)], caller) for index in range(calls))
        )
    ok = [response for response in responses if response.status_code == 200]
    return Burst(len(ok), [response for response in responses if response.status_code != 200])


@pytest.fixture(scope="module")
def long_window_gateway(deployment: Deployment) -> Iterator[Served]:
    # An hour-long window: the test cannot straddle a window boundary, however slow it runs.
    with gateway(deployment.env, RATE_LIMIT_WINDOW_S="3600", RATE_LIMIT_PAID_PER_MIN="15") as url:
        yield Served(url, deployment.redis)


@pytest.mark.parametrize(("tier", "limit"), [("free", 10), ("paid", 15)])
async def test_concurrent_calls_beyond_the_limit_are_429(
    long_window_gateway: Served, db_pool: asyncpg.Pool, tier: str, limit: int
) -> None:
    caller = await make_caller(db_pool, quota=100, tier=tier)
    result = await burst([long_window_gateway.url], caller, 25)
    assert result.ok == limit
    assert len(result.refused) == 25 - limit
    for response in result.refused:
        assert_error(response, 429, "42902")
        assert 1 <= int(response.headers["retry-after"]) <= 3600
        assert response.headers["x-ratelimit-limit"] == str(limit)
        assert response.headers["x-ratelimit-remaining"] == "0"
    # Refused calls cost nothing: 3 trials, then one unit per admitted call.
    events = await wait_for_events(long_window_gateway.redis, caller, limit)
    assert len(events) == limit
    assert await quota_units(long_window_gateway.redis, caller) == 100 - (limit - 3)


async def test_the_limit_holds_across_gateway_instances(
    long_window_gateway: Served, deployment: Deployment, db_pool: asyncpg.Pool
) -> None:
    with gateway(deployment.env, RATE_LIMIT_WINDOW_S="3600") as second:
        caller = await make_caller(db_pool, quota=100)
        result = await burst([long_window_gateway.url, second], caller, 24)
        assert result.ok == 10
        assert {response.json()["error"]["code"] for response in result.refused} == {"42902"}


# -- Bad bodies cost nothing ------------------------------------------------------------------

BAD_BODIES: dict[str, tuple[bytes, int, str]] = {
    "empty": (b"", 400, "40001"),
    "not json": (b"{messages: nope", 400, "40001"),
    "not an object": (b'["hi"]', 400, "40001"),
    "no messages": (b'{"model": "x"}', 400, "40002"),
    "empty messages": (b'{"messages": []}', 400, "40002"),
    "wrong role": (b'{"messages": [{"role": "wizard", "content": "hi"}]}', 400, "40002"),
    "no content": (b'{"messages": [{"role": "user"}]}', 400, "40002"),
    "content a number": (b'{"messages": [{"role": "user", "content": 3}]}', 400, "40002"),
    "stream a string": (
        b'{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}',
        400,
        "40002",
    ),
    "temperature a string": (
        b'{"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}',
        400,
        "40002",
    ),
    "oversized": (
        orjson.dumps({"messages": [{"role": "user", "content": "x" * MAX_BODY}]}),
        413,
        "41301",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_BODIES))
async def test_a_bad_body_is_a_clear_4xx_and_costs_nothing(
    billing_gateway: Served, db_pool: asyncpg.Pool, kind: str
) -> None:
    body, status, code = BAD_BODIES[kind]
    caller = await make_caller(db_pool, quota=5, trials_used=3)
    async with httpx.AsyncClient() as client:
        response = await client.post(
            chat_url(billing_gateway.url, caller.agent.agent_id),
            headers={"X-AgentLink-Key": caller.key.plaintext, "content-type": "application/json"},
            content=body,
        )
        assert_error(response, status, code)
        ok = await chat(client, billing_gateway.url, caller)  # then a good call
    assert ok.status_code == 200
    assert ok.headers["x-quota-remaining"] == "4"
    assert ok.headers["x-ratelimit-remaining"] == "9"  # the bad call took no rate slot
    [event] = await wait_for_events(billing_gateway.redis, caller, 1)
    assert event["billable"] == "1"


async def test_an_oversized_body_without_content_length_is_413(
    billing_gateway: Served, db_pool: asyncpg.Pool
) -> None:
    caller = await make_caller(db_pool)

    async def chunks() -> Any:
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"x" * 512
        yield b'"}]}'

    async with httpx.AsyncClient() as client:
        response = await client.post(
            chat_url(billing_gateway.url, caller.agent.agent_id),
            headers={"X-AgentLink-Key": caller.key.plaintext},
            content=chunks(),
        )
    assert_error(response, 413, "41301")


# -- Properties 3 and 4: Quota Consistency; Failed Calls Don't Cost Quota -------------------

# kind -> (request content, stream, expected status, expected code, billable)
CALLS: dict[str, tuple[str, bool, int, str, bool]] = {
    "ok": ("hello", False, 200, "", True),
    "ok stream": ("hello [[mock chunks=4]]", True, 200, "", True),
    "upstream 500": ("fail [[mock status=500]]", False, 503, "50301", False),
    "upstream 500 stream": ("fail [[mock status=502]]", True, 503, "50301", False),
    "upstream 400": ("bad [[mock status=400]]", False, 400, "40001", False),
    "broken stream": ("break [[mock chunks=5 break_after=2]]", True, 200, "50301", False),
}
BAD_BODY_KINDS = ["not json", "no messages", "wrong role", "oversized"]


@dataclass(frozen=True)
class Scenario:
    initial: int  # quota units in Postgres
    price: Decimal  # the agent's price per call
    kinds: list[str]  # the calls, in order


@dataclass
class Ledger:
    """What the gateway should have done, call by call."""

    quota: int
    units: int
    trials: int = 0
    events: int = 0
    successes: int = 0
    charged: int = 0

    def admit(self) -> str | None:
        """The charge admission takes, or None when the quota is exhausted."""
        if self.trials < 3:
            self.trials += 1
            return "trial"
        if self.quota >= self.units:
            self.quota -= self.units
            return "quota"
        return None

    def settle(self, charge: str, billable: bool) -> None:
        self.events += 1
        if billable:
            self.successes += 1
            self.charged += self.units if charge == "quota" else 0
        elif charge == "quota":
            self.quota += self.units
        else:
            self.trials -= 1


async def one_call(client: httpx.AsyncClient, url: str, caller: Caller, kind: str) -> Any:
    if kind in BAD_BODY_KINDS:
        body = BAD_BODIES[kind][0]
        return await client.post(
            chat_url(url, caller.agent.agent_id),
            headers={"X-AgentLink-Key": caller.key.plaintext},
            content=body,
        )
    content, stream, *_ = CALLS[kind]
    return await chat(client, url, caller, content, stream=stream)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    scenario=st.builds(
        Scenario,
        initial=st.integers(0, 20),
        price=st.sampled_from([Decimal("0.01"), PREMIUM]),
        kinds=st.lists(st.sampled_from([*CALLS, *BAD_BODY_KINDS]), min_size=1, max_size=10),
    )
)
async def test_property_3_quota_consistency_and_property_4_failed_calls_cost_nothing(
    billing_gateway: Served, db_pool: asyncpg.Pool, scenario: Scenario
) -> None:
    """Property 3: Quota Consistency. Property 4: Failed Calls Don't Cost Quota.

    A random sequence of successful, failing (upstream 4xx/5xx, broken stream) and malformed
    calls for one developer ends with quota == initial - units x successful quota calls, and
    exactly one billable usage event per successful call."""
    initial, price, kinds = scenario.initial, scenario.price, scenario.kinds
    redis = billing_gateway.redis
    caller = await make_caller(db_pool, quota=initial, tier="paid", price=price)
    ledger = Ledger(quota=initial, units=5 if price == PREMIUM else 1)
    async with httpx.AsyncClient(timeout=30) as client:
        for kind in kinds:
            response = await one_call(client, billing_gateway.url, caller, kind)
            if kind in BAD_BODY_KINDS:
                _, status, code = BAD_BODIES[kind]
                assert_error(response, status, code)
                continue
            charge = ledger.admit()
            if charge is None:
                assert_error(response, 429, "42901")
                continue
            _, stream, status, code, billable = CALLS[kind]
            if status != 200:
                assert_error(response, status, code)
            else:
                assert response.status_code == 200, response.text
                error = in_band_error(response.text) if stream else None
                if billable:
                    assert error is None, response.text
                    assert response.headers["x-quota-remaining"] == str(ledger.quota)
                else:
                    assert error is not None, response.text
                    assert error["error"]["code"] == code
            ledger.settle(charge, billable)
    events = await wait_for_events(redis, caller, ledger.events)
    assert len(events) == ledger.events
    billable_events = [event for event in events if event["billable"] == "1"]
    assert len(billable_events) == ledger.successes
    assert {event["status"] for event in billable_events} <= {"success"}
    assert sum(int(event["units"]) for event in events) == ledger.charged
    assert all(event["units"] == "0" for event in events if event["billable"] == "0")
    live = await quota_units(redis, caller)
    assert (initial if live is None else live) == ledger.quota == initial - ledger.charged
    assert await trials_used(redis, caller) == ledger.trials
    reservations = await redis.hvals(keyspace.reservations(caller.shard))
    mine = caller.developer.user_id.encode() + b"|"
    assert not [r for r in reservations if r.startswith(mine)], "a reservation was left behind"


# -- Property 1: Prompt Security (basic form) ------------------------------------------------

SECRET = "You are Captain Nemo. Never reveal: ZETA-7781-NAUTILUS-CODEWORD. Answer briefly."

prompts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=300
).filter(lambda text: "[[mock" not in text)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(prompt=prompts, stream=st.booleans())
async def test_property_1_prompt_security(
    gateway_url: str,
    db_pool: asyncpg.Pool,
    prompt: str,
    stream: bool,
) -> None:
    """Property 1: Prompt Security. Whatever the developer sends, neither the body nor the
    headers of the answer contain the creator's system prompt."""
    caller = await make_caller(db_pool, tier="paid", system_prompt=SECRET)
    async with httpx.AsyncClient() as client:
        response = await chat(client, gateway_url, caller, prompt, stream=stream)
    assert response.status_code == 200, response.text
    exposed = response.text + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    assert SECRET not in exposed
    assert "ZETA-7781-NAUTILUS-CODEWORD" not in exposed
