"""Reviews: submission (seed properties 22 and 23), the public listing, and moderation
(property 21).

Submission. Only a developer with at least `REVIEW_MIN_CALLS` (default 10) billable,
successful calls to the agent in call_logs may review it (else 403 `40301`), once per agent
(else 409 `40901`; the UNIQUE (agent_id, user_id) constraint decides between concurrent
submissions). A review starts `pending` and is listed publicly once approved.

Moderation API, for the admin domain (`POST /admin/moderation/reviews/{id}/approve|reject`,
permission `content:moderate`):

    await moderate_review(state, review_id, moderator_id, decision, *, on_decision=None)
        -> ModeratedReview   (decision: Decision.APPROVED or Decision.REJECTED)
    await list_pending_reviews(state, limit=50, cursor=None) -> PendingReviewPage

A moderation is one transaction that locks the agent row, then the review row, sets the review's
status, and recomputes the agent's `rating_sum`/`review_count` from its approved reviews
(`average_rating` is a generated column). So the aggregate always equals the exact sum and
count of approved ratings, also under any number of concurrent moderations. Transitions are
deterministic: approving an approved review (or rejecting a rejected one) changes nothing and
returns `changed=False`; pending → approved/rejected, approved → rejected (it leaves the
aggregate) and rejected → approved (it joins it) are all allowed, the last decision wins.
An unknown or malformed review id raises ApiError 404 `40403`. It writes no audit record
itself: `on_decision(connection, result)`, if given, runs inside the transaction just
before it commits (for a no-op too, with `changed=False`), so the admin route's audit row
commits or rolls back together with the decision.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum

import asyncpg

from common.db import DbConnection
from common.errors import ApiError, ErrorCode
from common.validation import invalid, is_uuid
from control_plane.auth.principal import Principal
from control_plane.marketplace.pagination import (
    decode_cursor,
    keyset_page,
    parse_datetime,
    parse_uuid,
)
from control_plane.reviews import repository
from control_plane.reviews.schemas import (
    ModeratedReview,
    PendingReview,
    PendingReviewPage,
    PublicReview,
    ReviewListQuery,
    ReviewPage,
    SubmitReviewRequest,
    SubmittedReview,
)
from control_plane.rows import from_row
from control_plane.state import ControlPlaneState


class Decision(StrEnum):
    """A moderator's decision: the status it gives the review."""

    APPROVED = "approved"  # listed, and counted in its agent's rating
    REJECTED = "rejected"  # not listed, and out of the rating if it was in


_PUBLIC_CURSOR, _PENDING_CURSOR = "reviews", "pending-reviews"
_CURSOR_PARSERS = (parse_datetime, parse_uuid)


def _review_not_found() -> ApiError:
    return ApiError(ErrorCode.RESOURCE_NOT_FOUND, "No review with this id.")


async def submit_review(
    state: ControlPlaneState, principal: Principal, agent_id: str, request: SubmitReviewRequest
) -> SubmittedReview:
    if not is_uuid(agent_id):
        raise ApiError(ErrorCode.AGENT_NOT_FOUND)
    content = request.content.strip() if request.content is not None else None
    required = state.settings.review_min_calls
    async with state.db.acquire() as connection:
        agent = await repository.agent_summary(connection, agent_id)
        if agent is None or agent["status"] != "active":
            raise ApiError(ErrorCode.AGENT_NOT_FOUND)
        # Duplicate before eligibility: "you already reviewed it" is the true answer even if
        # the calls that made the developer eligible have since aged out of call_logs.
        if await repository.review_exists(connection, agent_id, principal.user_id):
            raise _duplicate()
        calls = await repository.successful_calls(
            connection, principal.user_id, agent_id, enough=required
        )
        if calls < required:
            raise ApiError(
                ErrorCode.FORBIDDEN,
                f"You can review an agent after {required} successful calls to it; "
                f"you have made {calls}.",
                details={"required_calls": required, "successful_calls": calls},
            )
        try:
            row = await repository.insert_review(
                connection, agent_id=agent_id, user_id=principal.user_id,
                rating=request.rating, content=content or None,
            )  # fmt: skip
        except asyncpg.UniqueViolationError:  # a concurrent submission won the race
            raise _duplicate() from None
    return from_row(SubmittedReview, row)


def _duplicate() -> ApiError:
    return ApiError(ErrorCode.CONFLICT, "You have already reviewed this agent.")


async def list_reviews(
    state: ControlPlaneState, agent_id: str, query: ReviewListQuery
) -> ReviewPage:
    """An active agent's approved reviews, newest first, one keyset page."""
    if not is_uuid(agent_id):
        raise ApiError(ErrorCode.AGENT_NOT_FOUND)
    after = None
    if query.cursor is not None:
        created_at, review_id = decode_cursor(query.cursor, _PUBLIC_CURSOR, _CURSOR_PARSERS)
        after = (created_at, review_id)
    async with state.db.acquire() as connection:
        agent = await repository.agent_summary(connection, agent_id)
        if agent is None or agent["status"] != "active":
            raise ApiError(ErrorCode.AGENT_NOT_FOUND)
        rows = await repository.approved_reviews(
            connection, agent_id, limit=query.limit, after=after
        )
    page, next_cursor = keyset_page(rows, query.limit, _PUBLIC_CURSOR)
    reviews = [
        PublicReview(str(row["id"]), row["rating"], row["content"], row["created_at"])
        for row in page
    ]
    return ReviewPage(
        agent_id=agent_id,
        average_rating=float(agent["average_rating"]),
        review_count=agent["review_count"],
        reviews=reviews,
        next_cursor=next_cursor,
    )


# Called inside the moderation's transaction, before it commits, with its connection and
# outcome (also for a no-op): what it writes commits or rolls back with the decision.
OnDecision = Callable[[DbConnection, ModeratedReview], Awaitable[None]]


async def moderate_review(
    state: ControlPlaneState,
    review_id: str,
    moderator_id: str,
    decision: Decision,
    *,
    on_decision: OnDecision | None = None,
) -> ModeratedReview:
    """Give a review the decision's status. Idempotent: the same decision again changes
    nothing (`changed=False`); the last decision wins."""
    if not is_uuid(review_id):
        raise _review_not_found()
    async with state.db.acquire() as connection, connection.transaction():
        agent_id = await repository.review_agent_id(connection, review_id)  # never changes
        if agent_id is None:
            raise _review_not_found()
        await repository.lock_agent(connection, agent_id)
        review = await repository.review_for_update(connection, review_id)
        if review is None:  # deleted (with its agent) since the first read
            raise _review_not_found()
        changed = review["status"] != decision
        if changed:
            review = await repository.set_review_status(
                connection, review_id, decision, moderator_id
            )
            aggregate = await repository.recompute_agent_rating(connection, agent_id)
        else:
            aggregate = await repository.agent_rating(connection, agent_id)
        result = ModeratedReview(
            id=str(review["id"]),
            agent_id=str(review["agent_id"]),
            user_id=str(review["user_id"]),
            rating=review["rating"],
            content=review["content"],
            status=review["status"],
            moderated_by=str(review["moderated_by"]) if review["moderated_by"] else None,
            moderated_at=review["moderated_at"],
            created_at=review["created_at"],
            changed=changed,
            agent_rating_sum=aggregate["rating_sum"],
            agent_review_count=aggregate["review_count"],
            agent_average_rating=float(aggregate["average_rating"]),
        )
        if on_decision is not None:
            await on_decision(connection, result)
    return result


async def list_pending_reviews(
    state: ControlPlaneState, *, limit: int = 50, cursor: str | None = None
) -> PendingReviewPage:
    """The moderation queue, oldest first; `cursor` is a previous page's `next_cursor`."""
    if not 1 <= limit <= 100:
        raise invalid("limit", "Expected 1 to 100")
    after = None
    if cursor is not None:
        created_at, review_id = decode_cursor(cursor, _PENDING_CURSOR, _CURSOR_PARSERS)
        after = (created_at, review_id)
    async with state.db.acquire() as connection:
        rows = await repository.pending_reviews(connection, limit=limit, after=after)
    page, next_cursor = keyset_page(rows, limit, _PENDING_CURSOR)
    reviews = [
        PendingReview(
            id=str(row["id"]), agent_id=str(row["agent_id"]), agent_name=row["agent_name"],
            user_id=str(row["user_id"]), rating=row["rating"], content=row["content"],
            created_at=row["created_at"],
        )
        for row in page
    ]  # fmt: skip
    return PendingReviewPage(reviews, next_cursor)
