"""Access tokens (JWT, HS256, 15 minutes) and the check every non-public route runs.

The token names the user, their type, admin role, Redis shard and token generation (`gen`).
A valid signature is not enough: the user's current status, type, role and generation are
read from the user record in Redis (common/records.py; or Postgres when Redis lacks them),
so a suspension, a demotion, a logout or a refresh-token reuse (each bumps the generation,
control_plane/auth/sessions.py) cuts off every access token already issued on the next
request, not when it expires.
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
        "gen": principal.token_generation,
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
        generation = claims.get("gen", 0)  # tokens issued before the claim: generation 0
        # A signature proves who issued the token, not that its claims are well formed: the
        # subject becomes a Postgres uuid and the shard a Redis key, so both are checked.
        user_id = canonical_uuid(claims["sub"]) if isinstance(claims["sub"], str) else None
        if user_id is None or type(shard) is not int or not 0 <= shard < SHARD_COUNT:
            raise ValueError("malformed subject or shard")
        if type(generation) is not int or not 0 <= generation < 2**63:
            raise ValueError("malformed token generation")
        return Principal(
            user_id=user_id,
            user_type=UserType(claims["typ"]),
            admin_role=AdminRole(role) if role else None,
            shard=shard,
            token_generation=generation,
        )
    except (KeyError, ValueError, TypeError):
        raise ApiError(ErrorCode.INVALID_CREDENTIALS, "Invalid access token.") from None


_SESSION_FIELDS = ["status", "type", "role", "gen"]


async def authenticate(state: ControlPlaneState, authorization: str | None) -> Principal:
    if not authorization or not authorization[:7].lower() == "bearer ":
        raise ApiError(ErrorCode.INVALID_CREDENTIALS, "Authentication required.")
    principal = decode_access_token(state.settings.jwt_secret, authorization[7:].strip())
    status, user_type, role, generation = await _current_session(state, principal)
    if status != "active":
        raise ApiError(ErrorCode.FORBIDDEN, "This account is not active.")
    claimed_role = principal.admin_role.value if principal.admin_role else ""
    if (user_type, role, generation) != (principal.user_type.value, claimed_role,
                                         principal.token_generation):  # fmt: skip
        # Logged out, demoted or a stolen refresh token replayed since this token was issued.
        raise ApiError(ErrorCode.INVALID_CREDENTIALS, "This session has ended; log in again.")
    return principal


async def _current_session(
    state: ControlPlaneState, principal: Principal
) -> tuple[str | None, str | None, str, int | None]:
    """(status, type, role or "", generation) from the user record, else from Postgres."""
    try:
        fields = await state.redis.hmget(
            keyspace.user_record(principal.shard, principal.user_id), _SESSION_FIELDS
        )
    except RedisError:
        fields = [None] * len(_SESSION_FIELDS)  # Postgres can answer alone
    if all(value is not None for value in fields):
        status, user_type, role, generation = (
            value.decode() if isinstance(value, bytes) else str(value) for value in fields
        )
        return status, user_type, role, int(generation)
    # A cold record, or one written before the session fields (status and tier writes keep
    # whatever session fields a record has): Postgres answers.
    row = await state.db.fetchrow(
        "SELECT status, user_type, admin_role, token_generation FROM users WHERE id = $1",
        principal.user_id,
    )
    if row is None:
        return None, None, "", None
    return row["status"], row["user_type"], row["admin_role"] or "", row["token_generation"]
