"""Request and response bodies of the review routes and the moderation functions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

ReviewStatus = Literal["pending", "approved", "rejected"]


class SubmitReviewRequest(msgspec.Struct, forbid_unknown_fields=True):
    rating: Annotated[int, msgspec.Meta(ge=1, le=5)]
    content: Annotated[str, msgspec.Meta(max_length=5000)] | None = None


class ReviewListQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20
    cursor: Annotated[str, msgspec.Meta(min_length=1, max_length=512)] | None = None


class SubmittedReview(msgspec.Struct):
    id: str
    agent_id: str
    rating: int
    content: str | None
    status: ReviewStatus  # always "pending": it is listed once a moderator approves it
    created_at: datetime


class PublicReview(msgspec.Struct):
    id: str
    rating: int
    content: str | None
    created_at: datetime


class ReviewPage(msgspec.Struct):
    agent_id: str
    average_rating: float
    review_count: int
    reviews: list[PublicReview]
    next_cursor: str | None


class ModeratedReview(msgspec.Struct):
    """What `moderate_review` returns (and the admin routes can answer)."""

    id: str
    agent_id: str
    user_id: str
    rating: int
    content: str | None
    status: ReviewStatus
    moderated_by: str | None
    moderated_at: datetime | None
    created_at: datetime
    changed: bool  # False when the review already had the requested status (a no-op)
    # The agent's aggregate after the change, over its approved reviews.
    agent_rating_sum: int
    agent_review_count: int
    agent_average_rating: float


class PendingReview(msgspec.Struct):
    id: str
    agent_id: str
    agent_name: str
    user_id: str
    rating: int
    content: str | None
    created_at: datetime


class PendingReviewPage(msgspec.Struct):
    reviews: list[PendingReview]
    next_cursor: str | None
