"""Reviews over real HTTP and through the moderation functions: eligibility (seed property
22), one review per developer and agent (23), the public listing, and the rating aggregate
under concurrent moderation (21)."""

from __future__ import annotations

import asyncio
import uuid
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as redis_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.db import DbConnection
from common.domain import UserType
from common.errors import ApiError, ErrorCode
from control_plane.auth.principal import Principal
from control_plane.auth.tokens import issue_access_token
from control_plane.reviews import service
from control_plane.reviews.schemas import ModeratedReview
from control_plane.reviews.service import Decision
from control_plane.state import ControlPlaneState
from tests.control_plane.api_client import assert_error, bearer, register
from tests.control_plane.developers.support import insert_calls
from tests.factories import Agent, make_agent, make_developer, make_review, make_user
from tests.processes import TEST_JWT_SECRET, api_state

MIN_CALLS = 10  # REVIEW_MIN_CALLS default


def reviews_path(agent_id: str) -> str:
    return f"/api/v1/reviews/agents/{agent_id}"


@pytest.fixture(scope="session")
def state(
    control_env: dict[str, str], db_pool: asyncpg.Pool, redis: redis_asyncio.Redis
) -> ControlPlaneState:
    return api_state(control_env, db_pool, redis)


async def token_for_new_developer(db: asyncpg.Pool) -> tuple[str, dict[str, str]]:
    developer = await make_developer(db)
    principal = Principal(developer.user_id, UserType.DEVELOPER, None, developer.shard)
    return developer.user_id, bearer(issue_access_token(TEST_JWT_SECRET, principal, ttl_s=900))


async def eligible_developer(db: asyncpg.Pool, agent_id: str) -> tuple[str, dict[str, str]]:
    user_id, auth = await token_for_new_developer(db)
    await insert_calls(db, user_id=user_id, agent_id=agent_id, count=MIN_CALLS)
    return user_id, auth


def rounded_mean(ratings: list[int]) -> Decimal:
    if not ratings:
        return Decimal(0)
    mean = Decimal(sum(ratings)) / Decimal(len(ratings))
    return mean.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


# --- submission --------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    successes=st.integers(0, MIN_CALLS + 2),
    others=st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(0, 12)),
)
async def test_property_22_review_eligibility_enforcement(
    control_url: str, db_pool: asyncpg.Pool, successes: int, others: tuple[int, int, int]
) -> None:
    """Property 22: Review Eligibility Enforcement. Only billable, successful calls to this
    very agent count; with fewer than 10 the submission is refused with 403 40301, and the
    answer says what is missing."""
    failures, cancelled, elsewhere = others
    agent, other = await make_agent(db_pool), await make_agent(db_pool)
    user_id, auth = await token_for_new_developer(db_pool)
    calls: list[tuple[str, int, dict[str, Any]]] = [
        (agent.agent_id, successes, {}),
        (agent.agent_id, failures, {"billable": False, "status": "error"}),
        (agent.agent_id, cancelled, {"status": "cancelled"}),  # billable, but not a success
        (other.agent_id, elsewhere, {}),
    ]
    for agent_id, count, options in calls:
        if count:
            await insert_calls(db_pool, user_id=user_id, agent_id=agent_id, count=count,
                               **options)  # fmt: skip
    async with httpx.AsyncClient(base_url=control_url) as client:
        response = await client.post(reviews_path(agent.agent_id), json={"rating": 4},
                                     headers=auth)  # fmt: skip
    if successes >= MIN_CALLS:
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "pending"
    else:
        body = assert_error(response, 403, "40301")
        assert f"after {MIN_CALLS} successful calls" in body["error"]["message"]
        assert body["error"]["details"] == {
            "required_calls": MIN_CALLS, "successful_calls": successes
        }  # fmt: skip
        assert await db_pool.fetchval(
            "SELECT count(*) FROM reviews WHERE user_id = $1", user_id
        ) == 0  # fmt: skip


async def test_a_review_is_created_pending_and_not_listed(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    agent = await make_agent(db_pool)
    user_id, auth = await eligible_developer(db_pool, agent.agent_id)
    response = await client.post(reviews_path(agent.agent_id),
                                 json={"rating": 5, "content": "  Great agent.  "},
                                 headers=auth)  # fmt: skip
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending"
    assert body["rating"] == 5
    assert body["content"] == "Great agent."
    assert body["agent_id"] == agent.agent_id
    row = await db_pool.fetchrow("SELECT * FROM reviews WHERE id = $1", body["id"])
    assert row is not None
    assert str(row["user_id"]) == user_id
    listing = (await client.get(reviews_path(agent.agent_id))).json()
    assert listing["reviews"] == []
    assert listing["review_count"] == 0


async def test_property_23_duplicate_review_prevention(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, state: ControlPlaneState
) -> None:
    """Property 23: Duplicate Review Prevention: a second review of the same agent is 409
    40901, whatever the first one's status, and concurrent submissions create exactly one."""
    agent = await make_agent(db_pool)
    _, auth = await eligible_developer(db_pool, agent.agent_id)
    first = await client.post(reviews_path(agent.agent_id), json={"rating": 3}, headers=auth)
    assert first.status_code == 201
    again = await client.post(reviews_path(agent.agent_id), json={"rating": 5}, headers=auth)
    assert_error(again, 409, "40901")
    await service.moderate_review(
        state, first.json()["id"], await make_user(db_pool, "admin"), Decision.REJECTED
    )
    after_rejection = await client.post(reviews_path(agent.agent_id), json={"rating": 5},
                                        headers=auth)  # fmt: skip
    assert_error(after_rejection, 409, "40901")
    # Another agent is another matter.
    other = await make_agent(db_pool)
    user_id, auth = await eligible_developer(db_pool, other.agent_id)
    responses = await asyncio.gather(*(
        client.post(reviews_path(other.agent_id), json={"rating": rating}, headers=auth)
        for rating in (1, 2, 3, 4, 5, 1, 2, 3)
    ))  # fmt: skip
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * 7
    for response in responses:
        if response.status_code == 409:
            assert_error(response, 409, "40901")
    assert await db_pool.fetchval(
        "SELECT count(*) FROM reviews WHERE agent_id = $1 AND user_id = $2",
        other.agent_id, user_id,
    ) == 1  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"rating": 0}, "rating"),
        ({"rating": 6}, "rating"),
        ({"rating": "5"}, "rating"),
        ({"rating": 4.5}, "rating"),
        ({"content": "no rating"}, "body"),
        ({"rating": 4, "content": "x" * 5001}, "content"),
        ({"rating": 4, "title": "extra"}, "body"),
    ],
)
async def test_invalid_reviews_are_400(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, payload: dict[str, Any], field: str
) -> None:
    agent = await make_agent(db_pool)
    _, auth = await eligible_developer(db_pool, agent.agent_id)
    response = await client.post(reviews_path(agent.agent_id), json=payload, headers=auth)
    assert assert_error(response, 400, "40002")["error"]["details"][0]["field"] == field


async def test_content_of_5000_characters_is_accepted(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    agent = await make_agent(db_pool)
    _, auth = await eligible_developer(db_pool, agent.agent_id)
    body = {"rating": 2, "content": "y" * 5000}
    response = await client.post(reviews_path(agent.agent_id), json=body, headers=auth)
    assert response.status_code == 201, response.text


async def test_reviews_need_an_active_agent_and_a_developer(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    draft = await make_agent(db_pool, status="draft")
    _, auth = await eligible_developer(db_pool, draft.agent_id)
    for agent_id in (draft.agent_id, "nope", "00000000-0000-0000-0000-000000000000"):
        posted = await client.post(reviews_path(agent_id), json={"rating": 4}, headers=auth)
        assert_error(posted, 404, "40401")
        assert_error(await client.get(reviews_path(agent_id)), 404, "40401")
    agent = await make_agent(db_pool)
    assert_error(await client.post(reviews_path(agent.agent_id), json={"rating": 4}), 401, "40101")
    creator = bearer((await register(client, "creator"))["access_token"])
    forbidden = await client.post(reviews_path(agent.agent_id), json={"rating": 4}, headers=creator)
    assert_error(forbidden, 403, "40301")


# --- public listing and moderation ---------------------------------------------------------------


async def test_only_approved_reviews_are_listed_newest_first_in_pages(
    client: httpx.AsyncClient, db_pool: asyncpg.Pool, state: ControlPlaneState
) -> None:
    agent = await make_agent(db_pool)
    moderator = await make_user(db_pool, "admin")
    approved = []
    for rating in (5, 4, 3, 2, 1):
        review_id = await make_review(db_pool, agent.agent_id, rating, f"rated {rating}")
        await service.moderate_review(state, review_id, moderator, Decision.APPROVED)
        approved.append(review_id)
    rejected = await make_review(db_pool, agent.agent_id, 1, "rude")
    await service.moderate_review(state, rejected, moderator, Decision.REJECTED)
    await make_review(db_pool, agent.agent_id, 1, "still pending")

    seen: list[dict[str, Any]] = []
    params: dict[str, str] = {"limit": "2"}
    for _ in range(10):  # bounded: a cursor bug must fail, not loop
        response = await client.get(reviews_path(agent.agent_id), params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["review_count"] == 5
        assert page["average_rating"] == 3.0
        seen += page["reviews"]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert [review["id"] for review in seen] == list(reversed(approved))
    assert set(seen[0]) == {"id", "rating", "content", "created_at"}  # no reviewer identity
    bad = await client.get(reviews_path(agent.agent_id), params={"cursor": "e30"})
    assert_error(bad, 400, "40002")


async def pending_reviews(db: asyncpg.Pool, *ratings: int) -> tuple[Agent, str, list[str]]:
    """A new agent with a pending review per rating, and a moderator: (agent, moderator id,
    the review ids)."""
    agent = await make_agent(db)
    moderator = await make_user(db, "admin")
    return agent, moderator, [await make_review(db, agent.agent_id, rating) for rating in ratings]


async def test_moderation_transitions_are_deterministic(
    db_pool: asyncpg.Pool, state: ControlPlaneState
) -> None:
    _, moderator, (four, two) = await pending_reviews(db_pool, 4, 2)

    result = await service.moderate_review(state, four, moderator, Decision.APPROVED)
    assert (result.status, result.changed, result.agent_rating_sum) == ("approved", True, 4)
    assert result.moderated_by == moderator
    assert result.moderated_at is not None
    again = await service.moderate_review(state, four, moderator, Decision.APPROVED)  # idempotent
    assert (again.changed, again.agent_rating_sum, again.agent_review_count) == (False, 4, 1)
    assert again.moderated_at == result.moderated_at

    both = await service.moderate_review(state, two, moderator, Decision.APPROVED)
    assert (both.agent_rating_sum, both.agent_review_count) == (6, 2)
    assert both.agent_average_rating == 3.0
    # Rejecting an approved review takes it out of the aggregate.
    removed = await service.moderate_review(state, four, moderator, Decision.REJECTED)
    assert (removed.status, removed.changed) == ("rejected", True)
    assert (removed.agent_rating_sum, removed.agent_review_count) == (2, 1)
    rejected_again = await service.moderate_review(state, four, moderator, Decision.REJECTED)
    assert (rejected_again.changed, rejected_again.agent_rating_sum) == (False, 2)
    # rejected -> approved
    restored = await service.moderate_review(state, four, moderator, Decision.APPROVED)
    assert (restored.agent_rating_sum, restored.agent_review_count) == (6, 2)

    for bad in ("nope", str(uuid.uuid4())):
        with pytest.raises(ApiError) as raised:
            await service.moderate_review(state, bad, moderator, Decision.APPROVED)
        assert raised.value.code is ErrorCode.RESOURCE_NOT_FOUND
        assert raised.value.status == 404


async def test_on_decision_commits_or_rolls_back_with_the_moderation(
    db_pool: asyncpg.Pool, state: ControlPlaneState
) -> None:
    """The admin domain's audit hook runs inside the moderation's transaction."""
    agent, moderator, (review_id,) = await pending_reviews(db_pool, 4)

    async def failing(connection: DbConnection, result: ModeratedReview) -> None:
        status = await connection.fetchval("SELECT status FROM reviews WHERE id = $1", result.id)
        assert status == "approved"  # the hook sees the decision, not yet committed
        raise RuntimeError("audit write failed")

    with pytest.raises(RuntimeError):
        await service.moderate_review(
            state, review_id, moderator, Decision.APPROVED, on_decision=failing
        )
    assert await db_pool.fetchval("SELECT status FROM reviews WHERE id = $1", review_id) == (
        "pending"
    )
    assert await db_pool.fetchval(
        "SELECT review_count FROM agents WHERE id = $1", agent.agent_id
    ) == 0  # fmt: skip

    async def audit(connection: DbConnection, result: ModeratedReview) -> None:
        await connection.execute(
            """INSERT INTO audit_log (actor_id, action, target_type, target_id, details)
               VALUES ($1, 'review.approve', 'review', $2, $3)""",
            moderator, result.id, {"changed": result.changed},
        )  # fmt: skip

    result = await service.moderate_review(
        state, review_id, moderator, Decision.APPROVED, on_decision=audit
    )
    assert result.agent_review_count == 1
    details = await db_pool.fetch(
        "SELECT details FROM audit_log WHERE target_id = $1 ORDER BY id", review_id
    )
    assert [row["details"] for row in details] == [{"changed": True}]


async def test_the_moderation_queue_lists_pending_reviews_oldest_first(
    db_pool: asyncpg.Pool, state: ControlPlaneState
) -> None:
    agent = await make_agent(db_pool)
    made = [await make_review(db_pool, agent.agent_id, rating) for rating in (1, 2, 3)]
    queue: list[str] = []
    cursor = None
    for _ in range(1000):  # bounded; the queue is shared with other tests
        page = await service.list_pending_reviews(state, limit=2, cursor=cursor)
        queue += [review.id for review in page.reviews]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [review_id for review_id in queue if review_id in made] == made
    moderator = await make_user(db_pool, "admin")
    await service.moderate_review(state, made[0], moderator, Decision.APPROVED)
    remaining = await service.list_pending_reviews(state, limit=100)
    assert made[0] not in {review.id for review in remaining.reviews}
    with pytest.raises(ApiError):
        await service.list_pending_reviews(state, limit=0)


DECISIONS = ("pending", "approve", "reject", "approve_reject", "reject_approve", "approve_twice")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    reviews=st.lists(
        st.tuples(st.integers(1, 5), st.sampled_from(DECISIONS)), min_size=1, max_size=16
    )
)
async def test_property_21_rating_calculation_accuracy_under_concurrent_moderation(
    control_url: str,
    db_pool: asyncpg.Pool,
    state: ControlPlaneState,
    reviews: list[tuple[int, str]],
) -> None:
    """Property 21: Rating Calculation Accuracy. Every review's moderation runs concurrently
    with every other's (asyncio.gather over the pool); afterwards the agent's rating sum and
    count are exactly those of its approved reviews, its average is their mean rounded to two
    places, and the public API shows the same."""
    agent, moderator, ids = await pending_reviews(db_pool, *(rating for rating, _ in reviews))

    async def moderate(review_id: str, decision: str) -> None:
        approve, reject = Decision.APPROVED, Decision.REJECTED
        steps = {
            "pending": [], "approve": [approve], "reject": [reject],
            "approve_reject": [approve, reject], "reject_approve": [reject, approve],
            "approve_twice": [approve, approve],
        }[decision]  # fmt: skip
        for step in steps:
            await service.moderate_review(state, review_id, moderator, step)

    await asyncio.gather(*(
        moderate(review_id, decision) for review_id, (_, decision) in zip(ids, reviews, strict=True)
    ))  # fmt: skip

    approved = [rating for rating, decision in reviews
                if decision in ("approve", "reject_approve", "approve_twice")]  # fmt: skip
    row = await db_pool.fetchrow(
        "SELECT rating_sum, review_count, average_rating FROM agents WHERE id = $1",
        agent.agent_id,
    )
    assert row is not None
    assert row["rating_sum"] == sum(approved)
    assert row["review_count"] == len(approved)
    assert row["average_rating"] == rounded_mean(approved)
    async with httpx.AsyncClient(base_url=control_url) as client:
        listing = (await client.get(reviews_path(agent.agent_id), params={"limit": "100"})).json()
        detail = (await client.get(f"/api/v1/marketplace/agents/{agent.agent_id}")).json()
    assert listing["review_count"] == detail["review_count"] == len(approved)
    assert Decimal(str(listing["average_rating"])) == rounded_mean(approved)
    assert Decimal(str(detail["average_rating"])) == rounded_mean(approved)
    assert sorted(review["rating"] for review in listing["reviews"]) == sorted(approved)
    assert sum(detail["rating_distribution"].values()) == len(approved)
