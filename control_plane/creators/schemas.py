"""Request and response bodies of the creator routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import UNSET, UnsetType

# The database's own limits (creator_profiles CHECKs); the service adds what a type cannot
# say (a display name that is not blank once trimmed, an avatar URL that is really a URL).
DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Bio = Annotated[str, msgspec.Meta(max_length=5000)]
AvatarUrl = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
WalletAddress = Annotated[str, msgspec.Meta(max_length=100)]


class UpdateCreatorRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Partial: a field left out keeps its value; `null` clears `bio` or `avatar_url`."""

    display_name: DisplayName | UnsetType = UNSET
    bio: Bio | UnsetType | None = UNSET
    avatar_url: AvatarUrl | UnsetType | None = UNSET


class WalletRequest(msgspec.Struct, forbid_unknown_fields=True):
    wallet_address: WalletAddress


class CreatorOut(msgspec.Struct):
    id: str
    email: str
    display_name: str
    bio: str | None
    avatar_url: str | None
    verified: bool
    wallet_address: str | None
    total_earnings: str  # USD, a decimal string
    pending_earnings: str
    created_at: datetime
    updated_at: datetime
