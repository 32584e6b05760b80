"""Review moderation for the admin routes, on top of the reviews domain's service.

The reviews service owns the transition and the agent's rating aggregate
(`control_plane.reviews.service.moderate_review`, one transaction a decision);
this module adds the audit row, written through the service's `on_decision` hook inside the
same transaction, so a moderation and its audit row commit together or not at all.
"""

from __future__ import annotations

from common.db import DbConnection
from control_plane import audit
from control_plane.auth.principal import Principal
from control_plane.reviews import service as reviews
from control_plane.reviews.schemas import ModeratedReview, PendingReviewPage
from control_plane.reviews.service import Decision
from control_plane.state import ControlPlaneState


async def queue(state: ControlPlaneState, limit: int, cursor: str | None) -> PendingReviewPage:
    return await reviews.list_pending_reviews(state, limit=limit, cursor=cursor)


_AUDIT_ACTIONS = {Decision.APPROVED: "review.approve", Decision.REJECTED: "review.reject"}


async def decide(
    state: ControlPlaneState, actor: Principal, review_id: str, decision: Decision, *,
    ip: str | None,
) -> ModeratedReview:  # fmt: skip
    async def audit_decision(connection: DbConnection, result: ModeratedReview) -> None:
        await audit.record(
            connection, actor=actor, action=_AUDIT_ACTIONS[decision],
            target_type="review", target_id=result.id,
            details={"status": result.status, "changed": result.changed,
                     "agent_id": result.agent_id, "rating": result.rating,
                     "agent_review_count": result.agent_review_count},
            ip=ip,
        )  # fmt: skip

    return await reviews.moderate_review(
        state, review_id, actor.user_id, decision, on_decision=audit_decision
    )
