"""Access tokens (JWT, HS256, 15 minutes) and the check every non-public route runs.

The token names the user, their type, admin role and Redis shard. A valid signature is not
enough: the user's current status is read from the gateway's user record in Redis (or
Postgres when Redis has none), so a suspension locks the account out on the next request,
not when the token expires.
"""

from __future__ import annotations

import time
import uuid

import jwt
from redis.exceptions import RedisError

from common import keyspace
from common.domain import AdminRole, UserType
from common.errors import ApiError, ErrorCode
from common.validation import canonical_uuid
from control_plane.auth.principal import Principal
from control_plane.state import ControlPlaneState
from crypto.api_keys import SHARD_COUNT

_ISSUER = "agentlink"
_ALGORITHM = "HS256"


def issue_access_token(
    secret: str, principal: Principal, *, ttl_s: int, now: float | None = None
) -> str:
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": _ISSUER,
        "sub": principal.user_id,
        "typ": principal.user_type.value,
        "role": principal.admin_role.value if principal.admin_role else None,
        "shard": principal.shard,
        "iat": issued,
        "exp": issued + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def decode_access_token(secret: str, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[_ALGORITHM], issuer=_ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"]},
        )  # fmt: skip
    except jwt.ExpiredSignatureError:
        raise ApiError(ErrorCode.TOKEN_EXPIRED) from None
    except jwt.PyJWTError:
        raise ApiError(ErrorCode.INVALID_CREDENTIALS, "Invalid access token.") from None
    try:
        role = claims.get("role")
        shard = claims["shard"]
        # A signature proves who issued the token, not that its claims are well formed: the
        # subject becomes a Postgres uuid and the shard a Redis key, so both are checked.
        user_id = canonical_uuid(claims["sub"]) if isinstance(claims["sub"], str) else None
        if user_id is None or type(shard) is not int or not 0 <= shard < SHARD_COUNT:
            raise ValueError("malformed subject or shard")
        return Principal(
            user_id=user_id,
            user_type=UserType(claims["typ"]),
            admin_role=AdminRole(role) if role else None,
            shard=shard,
        )
    except (KeyError, ValueError, TypeError):
        raise ApiError(ErrorCode.INVALID_CREDENTIALS, "Invalid access token.") from None


async def authenticate(state: ControlPlaneState, authorization: str | None) -> Principal:
    if not authorization or not authorization[:7].lower() == "bearer ":
        raise ApiError(ErrorCode.INVALID_CREDENTIALS, "Authentication required.")
    principal = decode_access_token(state.settings.jwt_secret, authorization[7:].strip())
    try:
        status = await state.redis.hget(
            keyspace.user_record(principal.shard, principal.user_id), "status"
        )
    except RedisError:
        status = None  # Postgres can answer alone; Redis is only the fast path here
    if status is None:
        status = await state.db.fetchval(
            "SELECT status FROM users WHERE id = $1", principal.user_id
        )
    elif isinstance(status, bytes):
        status = status.decode()
    if status != "active":
        raise ApiError(ErrorCode.FORBIDDEN, "This account is not active.")
    return principal
