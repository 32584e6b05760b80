"""Dashboard sessions: the API's own tokens, carried in cookies.

A browser session is exactly an API session: logging in issues the same access token (JWT,
15 minutes) and rotating refresh token as `POST /api/v1/auth/login`, and every page checks the
access token the way every API route does (signature, then the account's live status, so a
suspension ends the session on the next click). The tokens travel in two HTTP-only,
`SameSite=Lax` cookies, `Secure` over https (DASHBOARD_SECURE_COOKIES): page scripts never
see them.

When the access token has expired, the refresh token is rotated as the API rotates it, with
one addition browsers need: two requests may arrive with the same refresh token (two tabs
after a long pause). The first rotates it; reuse detection would make the second end the
whole session. So the pair a token was rotated into is kept, sealed with the key ring, for
`DASHBOARD_REFRESH_GRACE_S` under a per-token lock, and a request arriving with the same token
in that window gets the same new pair instead.

Logout revokes the session's refresh-token family and marks its access token ended
(`dash:jti:<jti>`, until it would expire anyway); "log out everywhere" revokes every family of
the user and refuses every access token issued before that second (`dash:out:<user>`).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import jwt
import msgspec
from redis.exceptions import LockError, RedisError
from starlette.requests import Request
from starlette.responses import Response

from common import keyspace
from common.errors import ApiError, ErrorCode
from control_plane.auth import service as auth
from control_plane.auth.principal import Principal
from control_plane.auth.schemas import TokenPair
from control_plane.auth.tokens import authenticate
from control_plane.dashboard import csrf
from control_plane.dashboard.settings import DashboardSettings
from control_plane.state import ControlPlaneState
from crypto.errors import CryptoError

ACCESS_COOKIE = "al_access"
REFRESH_COOKIE = "al_refresh"
LOCK_TIMEOUT_S = 10
LOCK_WAIT_S = 5


@dataclass(slots=True)
class Session:
    principal: Principal | None = None
    access_token: str | None = field(default=None, repr=False)
    # A pair issued while handling this request (login or rotation): its cookies are set.
    issued: TokenPair | None = field(default=None, repr=False)
    # The token cookies must be dropped (logout, or a session that cannot go on).
    clear: bool = False
    # The account exists but is suspended or closed: pages say so instead of "log in".
    inactive: bool = False
    csrf_secret: str = field(default="", repr=False)
    csrf_new: bool = False

    def start(self, pair: TokenPair, principal: Principal) -> None:
        """Begin a session in this response (after login or registration)."""
        self.principal, self.access_token, self.issued = principal, pair.access_token, pair
        self.clear = False

    def end(self) -> None:
        self.principal, self.access_token, self.issued, self.clear = None, None, None, True


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _unverified_claims(token: str) -> dict[str, object]:
    # Called only on a token `authenticate` has just verified: this only reads jti and iat.
    claims: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def check_access(state: ControlPlaneState, token: str) -> Principal:
    """The API's own check, plus the dashboard's logout marks."""
    principal = await authenticate(state, f"Bearer {token}")
    claims = _unverified_claims(token)
    jti, issued_at = str(claims.get("jti", "")), claims.get("iat")
    try:
        # Two GETs, not an MGET: the keys are in different cluster slots (REDIS_CLUSTER).
        async with state.redis.pipeline(transaction=False) as pipe:
            pipe.get(keyspace.dashboard_ended_access_token(jti))
            pipe.get(keyspace.dashboard_logged_out_before(principal.user_id))
            ended, logged_out_before = await pipe.execute()
    except RedisError:
        raise ApiError(ErrorCode.STORAGE_UNAVAILABLE) from None
    if ended is not None:
        raise ApiError(ErrorCode.INVALID_CREDENTIALS, "This session has ended.")
    if (
        logged_out_before is not None
        and isinstance(issued_at, int)
        and issued_at < int(logged_out_before)
    ):
        raise ApiError(ErrorCode.INVALID_CREDENTIALS, "This session has ended.")
    return principal


def _rotation_name(token_hash: str) -> str:
    return f"dashboard-rotation:{token_hash}"


async def _rotate(
    state: ControlPlaneState, settings: DashboardSettings, refresh_token: str
) -> TokenPair:
    token_hash = _hash(refresh_token)
    cache_key = keyspace.dashboard_rotation(token_hash)

    async def rotated_already() -> TokenPair | None:
        sealed = await state.redis.get(cache_key)
        if not isinstance(sealed, bytes):
            return None
        try:
            plain = state.keyring.decrypt(sealed, agent_id=_rotation_name(token_hash), version=1)
            pair: TokenPair = msgspec.json.decode(plain, type=TokenPair)
        except (CryptoError, msgspec.DecodeError):
            return None
        return pair

    try:
        pair = await rotated_already()
        if pair is not None:
            return pair
        lock = state.redis.lock(
            keyspace.dashboard_rotation_lock(token_hash),
            timeout=LOCK_TIMEOUT_S,
            blocking_timeout=LOCK_WAIT_S,
        )
        async with lock:
            pair = await rotated_already()
            if pair is not None:
                return pair
            pair = await auth.refresh(state, refresh_token)
            if settings.refresh_grace_s:
                sealed = state.keyring.encrypt(
                    msgspec.json.encode(pair), agent_id=_rotation_name(token_hash), version=1
                )
                await state.redis.set(cache_key, sealed, ex=settings.refresh_grace_s)
            return pair
    except (RedisError, LockError):
        raise ApiError(ErrorCode.STORAGE_UNAVAILABLE) from None


async def resolve(
    state: ControlPlaneState, settings: DashboardSettings, request: Request
) -> Session:
    """Who is browsing: from the access cookie, else by rotating the refresh cookie."""
    cookies = request.cookies
    session = Session(csrf_secret=cookies.get(csrf.COOKIE, ""))
    if not session.csrf_secret:
        session.csrf_secret, session.csrf_new = csrf.new_secret(), True
    access, refresh = cookies.get(ACCESS_COOKIE), cookies.get(REFRESH_COOKIE)
    if access:
        try:
            session.principal = await check_access(state, access)
            session.access_token = access
            return session
        except ApiError as error:
            if error.code is ErrorCode.STORAGE_UNAVAILABLE:
                raise
            if error.code is ErrorCode.FORBIDDEN:
                session.inactive, session.clear = True, True
                return session
    if refresh:
        try:
            pair = await _rotate(state, settings, refresh)
            session.start(pair, await check_access(state, pair.access_token))
        except ApiError as error:
            if error.code is ErrorCode.STORAGE_UNAVAILABLE:
                raise
            session.end()
            session.inactive = error.code is ErrorCode.FORBIDDEN
        return session
    session.clear = access is not None
    return session


def secure_cookies(settings: DashboardSettings, request: Request) -> bool:
    if settings.secure_cookies == "always":
        return True
    if settings.secure_cookies == "never":
        return False
    return request.url.scheme == "https"


def write_cookies(
    session: Session,
    response: Response,
    *,
    secure: bool,
    refresh_ttl_s: int,
) -> None:
    common = {"httponly": True, "samesite": "lax", "secure": secure, "path": "/"}
    if session.issued is not None:
        pair = session.issued
        response.set_cookie(ACCESS_COOKIE, pair.access_token, max_age=pair.expires_in, **common)  # type: ignore[arg-type]
        response.set_cookie(REFRESH_COOKIE, pair.refresh_token, max_age=refresh_ttl_s, **common)  # type: ignore[arg-type]
    elif session.clear:
        response.delete_cookie(ACCESS_COOKIE, **common)  # type: ignore[arg-type]
        response.delete_cookie(REFRESH_COOKIE, **common)  # type: ignore[arg-type]
    if session.csrf_new:
        response.set_cookie(csrf.COOKIE, session.csrf_secret, max_age=refresh_ttl_s, **common)  # type: ignore[arg-type]


async def log_out(state: ControlPlaneState, request: Request, session: Session) -> None:
    """End this browser's session: its refresh family, and its access token at once."""
    refresh = request.cookies.get(REFRESH_COOKIE)
    principal = session.principal
    if principal is not None and refresh:
        await auth.logout(state, principal, refresh)
    token = session.access_token
    if token:
        claims = _unverified_claims(token)
        remaining = int(str(claims.get("exp", 0))) - int(time.time())
        if remaining > 0:
            try:
                await state.redis.set(
                    keyspace.dashboard_ended_access_token(str(claims.get("jti", ""))),
                    "1",
                    ex=remaining,
                )
            except RedisError:
                raise ApiError(ErrorCode.STORAGE_UNAVAILABLE) from None
    session.end()


async def log_out_everywhere(state: ControlPlaneState, session: Session) -> None:
    """End every session of the user: every refresh token (API clients' too), and every
    dashboard access token at once (an API client's runs out within its lifetime)."""
    principal = session.principal
    if principal is None:
        session.end()
        return
    await auth.logout_everywhere(state, principal)
    try:
        await state.redis.set(
            keyspace.dashboard_logged_out_before(principal.user_id),
            str(int(time.time())),
            ex=state.settings.access_token_ttl_s + 60,
        )
    except RedisError:
        raise ApiError(ErrorCode.STORAGE_UNAVAILABLE) from None
    session.end()
