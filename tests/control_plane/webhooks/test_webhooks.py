"""Developer webhooks end to end: endpoints registered over the API, events written to the
outbox with the change that made them, delivered by the worker's job to a real receiver that
verifies signatures; retries (property 24), disabling, SSRF refusals and a delivery cut off
midway."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from decimal import Decimal

import asyncpg
import httpx
import pytest
import redis.asyncio as redis_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.webhooks.delivery import Deliverer, retry_delay
from tests.control_plane.agents.helpers import config, create_agent
from tests.control_plane.api_client import assert_error, bearer
from tests.control_plane.api_client import register as register_user
from tests.control_plane.earnings.helpers import Caller, agent_of, event, ingest
from tests.control_plane.webhooks.helpers import deliverer, drain, register, webhook_settings
from tests.control_plane.webhooks.receiver import Receiver
from tests.factories import TEST_KEYRING, Developer, make_key, shard_of


@pytest.fixture(autouse=True)
def fresh_receiver(receiver: Receiver) -> None:
    receiver.received.clear()
    receiver.statuses.clear()
    receiver.redirect_to = None
    receiver.secret = None


async def developer(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    session = await register_user(client, "developer")
    return session["user"]["id"], bearer(session["access_token"])


async def endpoint(
    client: httpx.AsyncClient, headers: dict[str, str], receiver: Receiver, events: list[str],
    path: str = "/hook", **extra: object,
) -> str:  # fmt: skip
    created = await register(client, headers, receiver.url + path, events, **extra)
    receiver.secret = str(created["secret"])
    return str(created["id"])


async def test_register_list_delete_and_the_secret_is_shown_once(
    module_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    _, headers = await developer(module_client)
    created = await register(
        module_client, headers, receiver.url + "/a", ["quota.low", "key.revoked", "quota.low"],
        description="billing alerts", quota_low_threshold=25,
    )  # fmt: skip
    assert str(created["secret"]).startswith("whsec_")
    assert created["events"] == ["key.revoked", "quota.low"]
    listed = (await module_client.get("/api/v1/webhooks", headers=headers)).json()["webhooks"]
    assert [w["id"] for w in listed] == [created["id"]]
    assert listed[0]["quota_low_threshold"] == 25
    assert "secret" not in str(listed)
    _, other = await developer(module_client)
    assert_error(await module_client.delete(f"/api/v1/webhooks/{created['id']}", headers=other),
                 404, "40404")  # fmt: skip
    assert_error(await module_client.post(f"/api/v1/webhooks/{created['id']}/test", headers=other),
                 404, "40404")  # fmt: skip
    assert (
        await module_client.delete(f"/api/v1/webhooks/{created['id']}", headers=headers)
    ).status_code == 204
    assert (await module_client.get("/api/v1/webhooks", headers=headers)).json()["webhooks"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://127.0.0.1/x", "events": ["quota.low"]}, "url"),
        ({"url": "http://user:pw@127.0.0.1/x", "events": ["quota.low"]}, "url"),
        ({"url": "http://127.0.0.1:9/x", "events": ["call.completed"]}, "events"),
        ({"url": "http://127.0.0.1:9/x", "events": []}, "events"),
        ({"url": "http://127.0.0.1:9/x"}, "body"),  # "Object missing required field `events`"
    ],
)
async def test_bad_registrations_are_refused(
    module_client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    _, headers = await developer(module_client)
    response = await module_client.post("/api/v1/webhooks", headers=headers, json=body)
    error = assert_error(response, 400, "40002")
    assert error["error"]["details"][0]["field"] == field


async def test_private_addresses_are_refused_unless_allowed(
    control_env: dict[str, str], db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> None:
    from common.errors import ApiError
    from control_plane.auth.principal import Principal, UserType
    from control_plane.webhooks import service
    from control_plane.webhooks.schemas import CreateWebhook
    from tests.control_plane.developers.support import control_state
    from tests.factories import make_user

    strict = {**control_env, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "false"}
    state = control_state(strict, db_pool, redis)
    principal = Principal(await make_user(db_pool), UserType.DEVELOPER, None, 1)
    for url in ("http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.0.0.8/",
                "http://169.254.169.254/latest/meta-data/", "http://[::1]/"):  # fmt: skip
        with pytest.raises(ApiError) as refused:
            await service.create(state, principal, CreateWebhook(url, ["quota.low"]))
        assert refused.value.details[0]["field"] == "url"


async def test_a_test_event_is_signed_and_its_id_is_stable_across_retries(
    module_client: httpx.AsyncClient, db_pool: asyncpg.Pool, receiver: Receiver, deliver: Deliverer
) -> None:
    _, headers = await developer(module_client)
    webhook_id = await endpoint(module_client, headers, receiver, ["quota.low"])
    sent = (await module_client.post(f"/api/v1/webhooks/{webhook_id}/test", headers=headers)).json()
    receiver.statuses[:] = [500, 503]

    await drain(deliver, db_pool, webhook_id)

    got = receiver.events("webhook.test")
    assert len(got) == 3
    assert all(r.signature_ok for r in got)
    assert {r.event_id for r in got} == {sent["event_id"]}
    assert {r.body["id"] for r in got} == {sent["event_id"]}
    assert len({r.raw for r in got}) == 1  # the same bytes every time
    log = (
        await module_client.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=headers)
    ).json()
    [delivery] = log["deliveries"]
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == (
        "delivered", 3, 200,
    )  # fmt: skip
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 503, 200]
    assert all(a["latency_ms"] is not None for a in delivery["attempt_log"])


@settings(max_examples=8, deadline=None)
@given(failures=st.integers(0, 6))
async def test_property_24_webhook_retry_logic(
    control_url: str, db_pool: asyncpg.Pool, receiver: Receiver, deliver: Deliverer,
    failures: int,
) -> None:  # fmt: skip
    """Property 24: a failing delivery is retried up to 3 times, then marked failed; one that
    succeeds within those attempts is delivered once and not retried after."""
    receiver.received.clear()
    async with httpx.AsyncClient(base_url=control_url, timeout=30) as module_client:
        _, headers = await developer(module_client)
        webhook_id = await endpoint(module_client, headers, receiver, ["quota.low"])
        await module_client.post(f"/api/v1/webhooks/{webhook_id}/test", headers=headers)
    receiver.statuses[:] = [500] * failures
    await drain(deliver, db_pool, webhook_id)
    row = await db_pool.fetchrow(
        "SELECT status, attempts FROM webhook_deliveries WHERE webhook_id = $1", webhook_id
    )
    assert row is not None
    got = [r for r in receiver.received if r.path == "/hook" and r.event_type == "webhook.test"]
    if failures <= 3:
        assert (row["status"], row["attempts"]) == ("delivered", failures + 1)
        assert len(got) == failures + 1
    else:
        assert (row["status"], row["attempts"]) == ("failed", 4)
        assert len(got) == 4
    receiver.statuses.clear()


@settings(max_examples=50)
@given(base=st.floats(0.01, 60), attempts=st.integers(1, 8), seed=st.integers(0, 2**32))
def test_property_24_backoff_is_exponential_with_jitter(
    base: float, attempts: int, seed: int
) -> None:
    import random

    config = webhook_settings(backoff_base_s=base, backoff_max_s=10**9)
    rng = random.Random(seed)
    delays = [retry_delay(n, config, rng) for n in range(1, attempts + 1)]
    for n, delay in enumerate(delays, 1):
        assert 0.75 * base * 2 ** (n - 1) <= delay <= 1.25 * base * 2 ** (n - 1)
    assert delays == sorted(delays)  # 2 x 0.75 > 1.25: jitter never reorders the steps
    capped = webhook_settings(backoff_base_s=base, backoff_max_s=base)
    assert retry_delay(8, capped, rng) <= 1.25 * base


async def test_retries_are_scheduled_with_growing_delays(
    module_client: httpx.AsyncClient, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    job = deliverer(db_pool, backoff_base_s=30.0)
    try:
        _, headers = await developer(module_client)
        webhook_id = await endpoint(module_client, headers, receiver, ["quota.low"])
        await module_client.post(f"/api/v1/webhooks/{webhook_id}/test", headers=headers)
        receiver.statuses[:] = [500] * 4
        waits = []
        for _ in range(3):
            await job.run_once()
            row = await db_pool.fetchrow(
                """SELECT next_attempt_at - last_attempt_at AS wait FROM webhook_deliveries
                   WHERE webhook_id = $1""",
                webhook_id,
            )
            waits.append(row["wait"].total_seconds())
            await db_pool.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE webhook_id = $1",
                webhook_id,
            )
        for n, wait in enumerate(waits, 1):
            assert 0.75 * 30 * 2 ** (n - 1) <= wait <= 1.25 * 30 * 2 ** (n - 1) + 1
    finally:
        await job.aclose()


async def test_persistent_failure_disables_the_endpoint_with_a_reason(
    module_client: httpx.AsyncClient, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    job = deliverer(db_pool, disable_after_failures=2, max_retries=0)
    try:
        _, headers = await developer(module_client)
        webhook_id = await endpoint(module_client, headers, receiver, ["quota.low"], path="/broken")
        receiver.statuses[:] = [500] * 10
        for _ in range(2):
            await module_client.post(f"/api/v1/webhooks/{webhook_id}/test", headers=headers)
            await job.run_once()
        [hook] = (await module_client.get("/api/v1/webhooks", headers=headers)).json()["webhooks"]
        assert hook["active"] is False
        assert "2 deliveries in a row failed" in hook["disabled_reason"]
        assert "500" in hook["disabled_reason"]
        refused = await module_client.post(f"/api/v1/webhooks/{webhook_id}/test", headers=headers)
        assert_error(refused, 409, "40901")
        enabled = await module_client.post(f"/api/v1/webhooks/{webhook_id}/enable", headers=headers)
        assert enabled.json()["active"] is True
        assert enabled.json()["disabled_reason"] is None
    finally:
        receiver.statuses.clear()
        await job.aclose()


async def test_key_revoked_and_quota_events_are_written_with_their_change(
    module_client: httpx.AsyncClient, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis,
    receiver: Receiver, deliver: Deliverer,
) -> None:  # fmt: skip
    user_id, headers = await developer(module_client)
    webhook_id = await endpoint(
        module_client, headers, receiver, ["key.revoked", "quota.low", "quota.exhausted"],
        quota_low_threshold=3,
    )  # fmt: skip
    made = (
        await module_client.post("/api/v1/developers/keys", headers=headers, json={"name": "ci"})
    ).json()
    assert (
        await module_client.delete(f"/api/v1/developers/keys/{made['id']}", headers=headers)
    ).status_code == 204
    await module_client.delete(
        f"/api/v1/developers/keys/{made['id']}", headers=headers
    )  # again: no event

    # Quota: the developer has 100 free units; usage folded in by the worker crosses 3, then 0.
    shard = await shard_of(db_pool, user_id)
    me = Developer(user_id, shard)
    caller = Caller(me, await make_key(db_pool, me))
    agent = await agent_of(db_pool, (await register_user(module_client, "creator"))["user"]["id"])
    await ingest(db_pool, redis, [event(caller, agent) for _ in range(90)])
    await ingest(db_pool, redis, [event(caller, agent) for _ in range(8)])  # 2 left: low
    await ingest(db_pool, redis, [event(caller, agent) for _ in range(1)])  # 1 left: no event
    await ingest(db_pool, redis, [event(caller, agent) for _ in range(1)])  # 0: exhausted
    await drain(deliver, db_pool, webhook_id)

    [revoked] = receiver.events("key.revoked")
    assert revoked.body["data"]["key_id"] == made["id"]
    assert revoked.signature_ok
    [low] = receiver.events("quota.low")
    assert (low.body["data"]["remaining"], low.body["data"]["threshold"]) == (2, 3)
    [exhausted] = receiver.events("quota.exhausted")
    assert exhausted.body["data"]["remaining"] == 0


async def test_agent_updates_reach_the_developers_who_called_it_and_nobody_else(
    module_client: httpx.AsyncClient, db_pool: asyncpg.Pool, redis: redis_asyncio.Redis,
    receiver: Receiver, deliver: Deliverer,
) -> None:  # fmt: skip
    creator = await register_user(module_client, "creator")
    creator_headers = bearer(creator["access_token"])
    created = await create_agent(
        module_client,
        creator_headers,
        name="Helper",
        price_per_call="0.05",
        config=config(system_prompt="Be helpful. NEVER-SHOWN"),
    )
    agent_id = created["id"]
    caller_id, caller_headers = await developer(module_client)
    _, bystander_headers = await developer(module_client)
    caller_hook = await endpoint(
        module_client, caller_headers, receiver, ["agent.updated"], path="/caller"
    )
    bystander_hook = await endpoint(module_client, bystander_headers, receiver, ["agent.updated"],
                                    path="/bystander")  # fmt: skip
    receiver.secret = None
    shard = await shard_of(db_pool, caller_id)
    me = Developer(caller_id, shard)
    from tests.factories import Agent as FactoryAgent

    agent = FactoryAgent(agent_id, creator["user"]["id"], None, Decimal("0.05"))  # type: ignore[arg-type]
    await ingest(db_pool, redis, [event(Caller(me, await make_key(db_pool, me)), agent)])

    updated = await module_client.put(f"/api/v1/agents/{agent_id}", headers=creator_headers,
                               json={"description": "Now better."})  # fmt: skip
    assert updated.status_code == 200, updated.text
    await drain(deliver, db_pool, caller_hook)
    await drain(deliver, db_pool, bystander_hook)

    got = receiver.events("agent.updated")
    assert [r.path for r in got] == ["/caller"]
    assert got[0].body["data"]["agent_id"] == agent_id
    assert got[0].body["data"]["version"] == 2
    assert "NEVER-SHOWN" not in got[0].raw.decode()


async def test_ssrf_is_refused_at_delivery_including_redirects(
    module_client: httpx.AsyncClient, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """With private addresses not allowed, only the receiver's own address is let through:
    a redirect from it to another loopback address is refused before connecting."""
    import ipaddress

    _, headers = await developer(module_client)
    webhook_id = await endpoint(module_client, headers, receiver, ["quota.low"], path="/start")
    receiver.redirect_to = receiver.url.replace("127.0.0.1", "127.0.0.2") + "/moved"
    strict = Deliverer(
        db_pool, TEST_KEYRING, webhook_settings(allow_private_addresses=False, max_retries=0),
        allowed=lambda address: address == ipaddress.ip_address("127.0.0.1"),
    )  # fmt: skip
    try:
        await module_client.post(f"/api/v1/webhooks/{webhook_id}/test", headers=headers)
        await strict.run_once()
    finally:
        await strict.aclose()
    assert [r.path for r in receiver.received] == ["/start"]  # the redirect was not followed
    row = await db_pool.fetchrow(
        "SELECT status, last_error FROM webhook_deliveries WHERE webhook_id = $1", webhook_id
    )
    assert row["status"] == "failed"
    assert "refused" in row["last_error"]
    assert "127.0.0.2" in row["last_error"]


async def test_a_redirect_to_an_allowed_address_is_followed_and_host_is_kept(
    module_client: httpx.AsyncClient, db_pool: asyncpg.Pool, receiver: Receiver, deliver: Deliverer
) -> None:
    _, headers = await developer(module_client)
    webhook_id = await endpoint(module_client, headers, receiver, ["quota.low"], path="/start")
    receiver.redirect_to = receiver.url + "/moved"
    await module_client.post(f"/api/v1/webhooks/{webhook_id}/test", headers=headers)
    await drain(deliver, db_pool, webhook_id)
    assert [r.path for r in receiver.received] == ["/start", "/moved"]
    assert receiver.received[0].host == receiver.url.removeprefix("http://")


async def test_a_delivery_cut_off_midway_is_redelivered_with_the_same_id_once(
    module_client: httpx.AsyncClient, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """The worker dies while the receiver holds the request: the delivery's lease runs out,
    the next worker delivers it again with the same event id, and it ends delivered once."""
    first = deliverer(db_pool, lease_s=1.0)
    second = deliverer(db_pool, lease_s=1.0)
    try:
        _, headers = await developer(module_client)
        webhook_id = await endpoint(module_client, headers, receiver, ["quota.low"])
        sent = (
            await module_client.post(f"/api/v1/webhooks/{webhook_id}/test", headers=headers)
        ).json()
        receiver.hold_s = 5.0
        dying = asyncio.create_task(first.run_once())
        for _ in range(200):
            if receiver.received:
                break
            await asyncio.sleep(0.02)
        dying.cancel()  # the process is gone: nothing recorded
        with pytest.raises(asyncio.CancelledError):
            await dying
        assert (await second.run_once()).delivered == 0  # still leased
        await asyncio.sleep(1.1)
        assert (await second.run_once()).delivered >= 1
    finally:
        await first.aclose()
        await second.aclose()
    ids = [r.event_id for r in receiver.received]
    assert ids == [sent["event_id"], sent["event_id"]]
    row = await db_pool.fetchrow(
        "SELECT status, attempts FROM webhook_deliveries WHERE webhook_id = $1", webhook_id
    )
    assert (row["status"], row["attempts"]) == ("delivered", 2)
    assert (
        await db_pool.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE event_id = $1", sent["event_id"]
        )
        == 1
    )


def test_settings_hide_the_key_ring() -> None:
    assert "encryption" not in repr(dataclasses.replace(webhook_settings(), encryption_keys="x"))
    assert timedelta(seconds=1)
