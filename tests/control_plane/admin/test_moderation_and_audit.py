"""Moderation, the dashboard and the audit trail over real HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from common.domain import AdminRole
from control_plane import audit
from control_plane.auth.principal import Principal, UserType
from tests.control_plane.admin.support import Admin, audit_rows
from tests.control_plane.api_client import admin_token, assert_error, bearer
from tests.control_plane.developers.support import insert_calls
from tests.factories import make_agent, make_developer, make_review, make_user

A = "/api/v1/admin"


async def test_moderation_queue_approve_and_reject(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, moderator: Admin
) -> None:
    agent = await make_agent(db_pool)
    first = await make_review(db_pool, agent.agent_id, 5, "useful")
    second = await make_review(db_pool, agent.agent_id, 2, "useful")

    queued: list[str] = []
    cursor: str | None = None
    while True:  # walk the whole queue (other tests may have left pending reviews)
        params: dict[str, Any] = {"limit": 50} | ({"cursor": cursor} if cursor else {})
        response = await client.get(f"{A}/moderation/queue", params=params,
                                    headers=moderator.headers)  # fmt: skip
        assert response.status_code == 200, response.text
        page = response.json()
        queued += [item["id"] for item in page["reviews"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert queued.index(first) < queued.index(second)  # oldest first

    approved = await client.post(f"{A}/moderation/reviews/{first}/approve",
                                 headers=moderator.headers)  # fmt: skip
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["agent_review_count"] == 1
    rejected = await client.post(f"{A}/moderation/reviews/{second}/reject",
                                 headers=moderator.headers)  # fmt: skip
    assert rejected.json()["status"] == "rejected"
    rating = await db_pool.fetchrow(
        "SELECT rating_sum, review_count FROM agents WHERE id = $1", agent.agent_id
    )
    assert rating is not None
    assert (rating["rating_sum"], rating["review_count"]) == (5, 1)

    for review_id, action in ((first, "review.approve"), (second, "review.reject")):
        rows = await audit_rows(db_pool, target_id=review_id, action=action)
        assert len(rows) == 1
        assert str(rows[0]["actor_id"]) == moderator.user_id
        assert rows[0]["actor_role"] == "moderator"
        assert rows[0]["details"]["changed"] is True
    missing = await client.post(f"{A}/moderation/reviews/{uuid.uuid4()}/approve",
                                headers=moderator.headers)  # fmt: skip
    assert_error(missing, 404, "40404")


async def test_dashboard_stats_count_what_happened(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    _, support = await admin_token(db_pool, AdminRole.SUPPORT)

    async def stats() -> dict[str, Any]:
        response = await client.get(f"{A}/dashboard/stats", headers=bearer(support))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    before = await stats()
    agent = await make_agent(db_pool)  # + a creator and an active agent
    developer = await make_developer(db_pool)  # + a developer
    await make_review(db_pool, agent.agent_id, 4, "useful")  # + another developer, a pending review
    now = datetime.now(UTC)
    calls = [  # (billable, cost, age)
        (True, Decimal("0.05"), timedelta(minutes=5)),
        (False, Decimal(0), timedelta(hours=2)),
        (True, Decimal("0.25"), timedelta(days=3)),
        (True, Decimal("9"), timedelta(days=40)),  # outside both windows
    ]
    await db_pool.execute(  # the month 40 days ago may be older than the migration's partitions
        "SELECT ensure_call_log_partitions((now() - interval '40 days')::date, 2)"
    )
    for billable, cost, age in calls:
        await insert_calls(
            db_pool, user_id=developer.user_id, agent_id=agent.agent_id, count=1,
            billable=billable, status="success" if billable else "error", cost=cost,
            created_at=now - age,
        )  # fmt: skip
    await db_pool.execute(
        "UPDATE agents SET total_calls = 7, total_revenue = 0.35 WHERE id = $1", agent.agent_id
    )
    after = await stats()

    assert after["users"]["total"] - before["users"]["total"] == 3
    assert after["users"]["by_type"]["developer"] - before["users"]["by_type"]["developer"] == 2
    assert after["agents"]["by_status"]["active"] - before["agents"]["by_status"]["active"] == 1
    assert after["pending_reviews"] - before["pending_reviews"] == 1
    day, month = after["calls"]["last_24h"], after["calls"]["last_30d"]
    day0, month0 = before["calls"]["last_24h"], before["calls"]["last_30d"]
    assert (day["calls"] - day0["calls"], day["billable_calls"] - day0["billable_calls"]) == (2, 1)
    assert Decimal(day["revenue"]) - Decimal(day0["revenue"]) == Decimal("0.05")
    assert month["calls"] - month0["calls"] == 3
    assert Decimal(month["revenue"]) - Decimal(month0["revenue"]) == Decimal("0.30")
    assert after["calls"]["all_time_calls"] - before["calls"]["all_time_calls"] == 7
    assert Decimal(after["calls"]["all_time_revenue"]) - Decimal(
        before["calls"]["all_time_revenue"]
    ) == Decimal("0.35")


async def test_audit_log_filters_and_pages(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, super_admin: Admin
) -> None:
    targets = [await make_user(db_pool) for _ in range(3)]
    for target in targets:
        for status in ("suspended", "active"):
            response = await client.put(f"{A}/users/{target}/status", headers=super_admin.headers,
                                        json={"status": status})  # fmt: skip
            assert response.status_code == 200
    params: dict[str, Any] = {"actor_id": super_admin.user_id, "action": "user.status", "limit": 4}
    first = await client.get(f"{A}/audit-log", params=params, headers=super_admin.headers)
    assert first.status_code == 200, first.text
    page = first.json()
    assert len(page["items"]) == 4
    assert page["next_before"] == page["items"][-1]["id"]
    rest = await client.get(f"{A}/audit-log", params=params | {"before": page["next_before"]},
                            headers=super_admin.headers)  # fmt: skip
    items = page["items"] + rest.json()["items"]
    assert len(items) == 6
    assert rest.json()["next_before"] is None
    assert [item["id"] for item in items] == sorted((item["id"] for item in items), reverse=True)
    assert {item["target_id"] for item in items} == set(targets)
    assert all(item["actor_id"] == super_admin.user_id for item in items)
    assert items[0]["details"]["after"] == {"status": "active"}
    assert items[0]["ip"] == "127.0.0.1"

    by_target = await client.get(
        f"{A}/audit-log", headers=super_admin.headers,
        params={"target_type": "user", "target_id": targets[0]},
    )  # fmt: skip
    assert len(by_target.json()["items"]) == 2
    bad = await client.get(f"{A}/audit-log", params={"actor_id": "x"}, headers=super_admin.headers)
    assert_error(bad, 400, "40002")


async def test_audit_record_is_part_of_the_callers_transaction(db_pool: asyncpg.Pool) -> None:
    actor = Principal(str(uuid.uuid4()), UserType.ADMIN, AdminRole.SUPER_ADMIN, 0)
    target = f"t-{uuid.uuid4().hex}"
    async with db_pool.acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        await audit.record(connection, actor=actor, action="test.rolled_back",
                           target_type="test", target_id=target, ip="not-an-ip")  # fmt: skip
        await transaction.rollback()
        async with connection.transaction():
            entry = await audit.record(connection, actor=actor, action="test.kept",
                                       target_type="test", target_id=target, ip="::1")  # fmt: skip
    rows = await audit_rows(db_pool, target_id=target)
    assert [(row["id"], row["action"], str(row["ip"])) for row in rows] == [
        (entry, "test.kept", "::1")]  # fmt: skip
    with pytest.raises(asyncpg.PostgresError):  # append-only
        await db_pool.execute("DELETE FROM audit_log WHERE id = $1", entry)


@pytest.mark.parametrize(
    "details",
    [{"password": "x"}, {"api_key": "ak_x"}, {"after": {"refresh_token": "rt"}},
     {"system_prompt": "..."}, {"key_hash": "ab"}, {"webhook_secret": "s"}],
)  # fmt: skip
async def test_audit_refuses_secret_looking_details(
    db_pool: asyncpg.Pool, details: dict[str, Any]
) -> None:
    async with db_pool.acquire() as connection, connection.transaction():
        with pytest.raises(ValueError, match="secrets"):
            await audit.record(connection, actor=None, action="test.secret", details=details)


async def test_audit_rejects_a_malformed_action(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as connection:
        with pytest.raises(ValueError, match="action"):
            await audit.record(connection, actor=None, action="Drop Table")
