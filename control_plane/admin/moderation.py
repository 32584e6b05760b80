"""Review moderation for the admin routes, on top of the reviews domain's service.

The reviews service owns the transition and the agent's rating aggregate
(`control_plane.reviews.service.approve_review` / `reject_review`, one transaction each);
this module adds the audit row, written through the service's `on_decision` hook inside the
same transaction, so a moderation and its audit row commit together or not at all.
"""

from __future__ import annotations

from common.db import DbConnection
from control_plane import audit
from control_plane.auth.principal import Principal
from control_plane.reviews import service as reviews
from control_plane.reviews.schemas import ModeratedReview, PendingReviewPage
from control_plane.state import ControlPlaneState


async def queue(state: ControlPlaneState, limit: int, cursor: str | None) -> PendingReviewPage:
    return await reviews.list_pending_reviews(state, limit=limit, cursor=cursor)


async def decide(
    state: ControlPlaneState, actor: Principal, review_id: str, *, approve: bool,
    ip: str | None,
) -> ModeratedReview:  # fmt: skip
    moderate = reviews.approve_review if approve else reviews.reject_review

    async def audit_decision(connection: DbConnection, result: ModeratedReview) -> None:
        await audit.record(
            connection, actor=actor, action="review.approve" if approve else "review.reject",
            target_type="review", target_id=result.id,
            details={"status": result.status, "changed": result.changed,
                     "agent_id": result.agent_id, "rating": result.rating,
                     "agent_review_count": result.agent_review_count},
            ip=ip,
        )  # fmt: skip

    return await moderate(state, review_id, actor.user_id, on_decision=audit_decision)
