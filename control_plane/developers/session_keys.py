"""Short-lived API keys the dashboard's playground calls the gateway with.

The playground chats with an agent through the real gateway, so the developer's browser session
needs an API key; the plaintext of the developer's own keys is never stored, so it cannot be
that. Instead the playground mints a key of its own: a normal `api_keys` row (the gateway
admits, rate-limits and bills it exactly like any key, trials included) marked with
`permissions = {"scope": "playground", "expires_at": ...}`. Its plaintext never reaches the
browser: it is sealed with the key ring and kept in Redis, under the developer's shard, for
exactly the key's lifetime, and only the control plane's playground relay reads it.

One per developer at a time: minting revokes the previous one; playground keys do not count
against the active-key cap and are listed apart from the developer's own keys.

The gateway does not know key expiry, so the lifetime is enforced by revocation: at logout
(`revoke_for_user`), when the next key is minted, and by the worker's sweep (`revoke_expired`,
driven by the `pgkey:expiry` sorted set) once `expires_at` has passed. Between expiry and the
sweep (at most one sweep interval) the gateway would still accept the key, but its sealed
plaintext expired from Redis at the same moment, so nothing holds it any more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
from redis.exceptions import LockError, RedisError

from common import keyspace
from common.db import DbConnection
from common.errors import ApiError, ErrorCode
from common.redis_store import RedisClient
from control_plane import gateway_sync
from control_plane.auth.principal import Principal
from control_plane.developers import repository
from control_plane.state import ControlPlaneState
from crypto.api_keys import generate_api_key
from crypto.errors import CryptoError

logger = logging.getLogger("agentlink.session_keys")

KEY_NAME = "Playground (browser session)"
# A key this close to its expiry is replaced rather than used: a call must not start on a key
# the sweep may revoke a moment later.
RENEW_MARGIN_S = 60
LOCK_TIMEOUT_S = 10
LOCK_WAIT_S = 5
SWEEP_BATCH = 500


@dataclass(frozen=True, slots=True)
class SessionKey:
    key_id: str
    plaintext: str = field(repr=False)  # never in a repr, so never in a log line
    expires_at: datetime


def _sealed_name(user_id: str) -> str:
    # The key ring binds each envelope to a name; this one cannot be moved to another user.
    return f"playground-key:{user_id}"


def _seal(state: ControlPlaneState, user_id: str, key: SessionKey) -> bytes:
    payload = orjson.dumps(
        {"key_id": key.key_id, "key": key.plaintext, "expires_at": key.expires_at.isoformat()}
    )
    return state.keyring.encrypt(payload, agent_id=_sealed_name(user_id), version=1)


def _unseal(state: ControlPlaneState, user_id: str, sealed: bytes) -> SessionKey | None:
    try:
        payload = orjson.loads(
            state.keyring.decrypt(sealed, agent_id=_sealed_name(user_id), version=1)
        )
        return SessionKey(
            payload["key_id"], payload["key"], datetime.fromisoformat(payload["expires_at"])
        )
    except (CryptoError, ValueError, KeyError, TypeError):
        return None  # unreadable (a retired encryption key): mint a new one


async def _cached(state: ControlPlaneState, principal: Principal) -> SessionKey | None:
    sealed = await state.redis.get(keyspace.playground_key(principal.shard, principal.user_id))
    if not isinstance(sealed, bytes):
        return None
    key = _unseal(state, principal.user_id, sealed)
    if key is None or key.expires_at - datetime.now(UTC) < timedelta(seconds=RENEW_MARGIN_S):
        return None
    return key


async def current(state: ControlPlaneState, principal: Principal, ttl_s: int) -> SessionKey:
    """The developer's playground key, minted when there is none (or it is about to expire).

    Concurrent callers (two tabs) share one mint: a Redis lock per developer, and whoever
    waited reads what the winner stored.
    """
    try:
        key = await _cached(state, principal)
        if key is not None:
            return key
        lock_name = keyspace.playground_key_lock(principal.shard, principal.user_id)
        async with state.redis.lock(
            lock_name, timeout=LOCK_TIMEOUT_S, blocking_timeout=LOCK_WAIT_S
        ):
            key = await _cached(state, principal)
            if key is not None:
                return key
            key = await _mint(state, principal, ttl_s)
            await state.redis.set(
                keyspace.playground_key(principal.shard, principal.user_id),
                _seal(state, principal.user_id, key),
                px=max(1, int((key.expires_at - datetime.now(UTC)).total_seconds() * 1000)),
            )
            return key
    except (RedisError, LockError):
        raise ApiError(ErrorCode.STORAGE_UNAVAILABLE) from None


async def _revoke_rows(
    state: ControlPlaneState,
    connection: DbConnection,
    rows: list[asyncpg.Record],
    *,
    shard: int,
    user_id: str,
) -> None:
    """Revoke these keys of one user, writing the gateway's records before the commit."""
    if not rows:
        return
    await repository.revoke_keys(connection, [str(row["id"]) for row in rows])
    await gateway_sync.hold_write_through(connection)
    for row in rows:
        await gateway_sync.write_api_key(
            state.redis, shard=shard, key_hash=row["key_hash"].strip(), user_id=user_id,
            key_id=str(row["id"]), revoked=True,
        )  # fmt: skip


async def _mint(state: ControlPlaneState, principal: Principal, ttl_s: int) -> SessionKey:
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=ttl_s)
    async with state.db.acquire() as connection, connection.transaction():
        user = await repository.lock_user(connection, principal.user_id)
        if user is None:
            raise ApiError(ErrorCode.USER_NOT_FOUND)
        shard = user["redis_shard"]
        previous = await repository.active_session_keys(connection, principal.user_id)
        await _revoke_rows(state, connection, previous, shard=shard, user_id=principal.user_id)
        generated = generate_api_key(shard)
        permissions = {"scope": repository.SESSION_SCOPE, "expires_at": expires_at.isoformat()}
        row = await repository.insert_key(
            connection, user_id=principal.user_id, key_hash=generated.key_hash,
            prefix=generated.prefix, name=KEY_NAME, permissions=permissions,
        )  # fmt: skip
        key_id = str(row["id"])
        await gateway_sync.hold_write_through(connection)
        await gateway_sync.write_api_key(
            state.redis, shard=shard, key_hash=generated.key_hash, user_id=principal.user_id,
            key_id=key_id, revoked=False,
        )  # fmt: skip
        # Before the commit: a key that exists is always in the sweep's set (a stray id of a
        # rolled-back mint is dropped by the sweep, which finds no such key).
        await state.redis.zadd(
            keyspace.PLAYGROUND_KEY_EXPIRIES, {key_id: int(expires_at.timestamp() * 1000)}
        )
    logger.info("playground key minted", extra={"event": "playground_key", "key_id": key_id})
    return SessionKey(key_id, generated.plaintext, expires_at)


async def revoke_for_user(state: ControlPlaneState, principal: Principal) -> int:
    """End the developer's playground key (logout): forget the sealed plaintext first, so no
    call can start with it, then revoke it everywhere. Returns how many keys were revoked."""
    try:
        await state.redis.delete(keyspace.playground_key(principal.shard, principal.user_id))
    except RedisError:
        raise ApiError(ErrorCode.STORAGE_UNAVAILABLE) from None
    async with state.db.acquire() as connection, connection.transaction():
        user = await repository.lock_user(connection, principal.user_id)
        if user is None:
            return 0
        rows = await repository.active_session_keys(connection, principal.user_id)
        await _revoke_rows(
            state, connection, rows, shard=user["redis_shard"], user_id=principal.user_id
        )
    return len(rows)


async def revoke_expired(db: asyncpg.Pool, redis: RedisClient, *, now_ms: int | None = None) -> int:
    """The worker's sweep: revoke every playground key past its expiry. Returns the count."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    revoked = 0
    while True:
        due = await redis.zrangebyscore(
            keyspace.PLAYGROUND_KEY_EXPIRIES, "-inf", now_ms, start=0, num=SWEEP_BATCH
        )
        if not due:
            return revoked
        key_ids = [item.decode() if isinstance(item, bytes) else str(item) for item in due]
        async with db.acquire() as connection, connection.transaction():
            rows = await repository.unrevoked_session_keys(connection, key_ids)
            if rows:
                await repository.revoke_keys(connection, [str(row["id"]) for row in rows])
                await gateway_sync.hold_write_through(connection)
                for row in rows:
                    await gateway_sync.write_api_key(
                        redis, shard=row["redis_shard"], key_hash=row["key_hash"].strip(),
                        user_id=str(row["user_id"]), key_id=str(row["id"]), revoked=True,
                    )  # fmt: skip
        await redis.zrem(keyspace.PLAYGROUND_KEY_EXPIRIES, *key_ids)
        revoked += len(rows)
        if len(due) < SWEEP_BATCH:
            return revoked
        await asyncio.sleep(0)
