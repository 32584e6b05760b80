"""Request and response bodies of the auth routes."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

# The handler trims and lower-cases, then wants local@domain.tld (auth/service.py).
Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=254,
        extra_json_schema={"pattern": r"^\s*[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+\s*$"},
    ),
]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=128)]
RefreshToken = Annotated[str, msgspec.Meta(min_length=10, max_length=200)]


class RegisterRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password
    user_type: Literal["creator", "developer"]
    display_name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Annotated[str, msgspec.Meta(max_length=128)]


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: RefreshToken


class UserOut(msgspec.Struct):
    id: str
    email: str
    user_type: str
    admin_role: str | None = None


class TokenPair(msgspec.Struct):
    access_token: str
    refresh_token: str
    expires_in: int
    user: UserOut
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
