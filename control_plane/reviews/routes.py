"""Review routes: submit (developers), list approved (public). Moderation is exposed by the
admin domain through `control_plane.reviews.service.moderate_review`."""

from __future__ import annotations

from starlette.responses import Response

from common.domain import UserType
from control_plane.api import ApiRoute, Context, json_response
from control_plane.reviews import service
from control_plane.reviews.schemas import (
    ReviewListQuery,
    ReviewPage,
    SubmitReviewRequest,
    SubmittedReview,
)


async def submit_review(context: Context, body: SubmitReviewRequest) -> SubmittedReview:
    return await service.submit_review(context.state, context.user, context.path["agent_id"], body)


async def list_agent_reviews(context: Context, query: ReviewListQuery) -> Response:
    page = await service.list_reviews(context.state, context.path["agent_id"], query)
    return json_response(page, headers={"Cache-Control": "public, max-age=30"})


PREFIX = "/api/v1/reviews"
ROUTES = [
    ApiRoute("POST", f"{PREFIX}/agents/{{agent_id}}", submit_review,
             "Review an agent you have called (pending until a moderator approves it)",
             body=SubmitReviewRequest, response=SubmittedReview, status=201,
             user_types=frozenset({UserType.DEVELOPER}), tags=("reviews",)),
    ApiRoute("GET", f"{PREFIX}/agents/{{agent_id}}", list_agent_reviews,
             "An agent's approved reviews, newest first", query=ReviewListQuery,
             response=ReviewPage, tags=("reviews",)),
]  # fmt: skip
