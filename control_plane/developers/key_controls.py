"""A key's own controls and its rotation (OpenRouter-style), beside the account's limits.

`PATCH /developers/keys/{id}` sets a spend cap (quota units per UTC day, per UTC month or in
total), a rate limit of its own (calls per rate window, on top of the account's), an expiry
instant and an allow-list of agents. Postgres holds them (migration 0012); the key's gateway
record is written in the same transaction (gateway_sync), and admit.lua enforces all four in
the one atomic admission step, so they hold on the very next request on every gateway and
exactly under concurrency. `POST /developers/keys/{id}/rotate` creates a replacement with the
same name and controls and lets the old key work `grace_seconds` more.

At most MAX_ACTIVE_KEYS keys that still work (not revoked, not expired) per developer. A
rotation replaces its key, so that key is not counted against it, but a key still in its
grace is: at the cap one rotation goes through, the next waits for the grace to end (or a
revoke). So never more than MAX_ACTIVE_KEYS + 1 keys work at once. Creations and rotations of
one developer take the user row's lock first, so the cap holds under concurrency.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from msgspec import UNSET
from redis.exceptions import RedisError

from common import keyspace
from common.errors import ApiError, ErrorCode
from common.records import key_controls_of, spend_bucket
from common.validation import is_uuid
from control_plane import gateway_sync
from control_plane.auth.principal import Principal
from control_plane.developers import repository
from control_plane.developers.schemas import (
    ApiKeyOut,
    CreatedApiKey,
    KeyControlsPatch,
    RotateKeyRequest,
    SpendCap,
)
from control_plane.state import ControlPlaneState
from crypto.api_keys import generate_api_key

MAX_ACTIVE_KEYS = 25


def _not_found() -> ApiError:
    return ApiError(ErrorCode.RESOURCE_NOT_FOUND, "No such API key.")


async def check_room(connection: Any, user_id: str, *, replacing: str | None = None) -> None:
    """409 unless the developer may have one more working key (`replacing` is going away).
    Call with the user row locked (repository.lock_user)."""
    working = await repository.count_active_keys(connection, user_id, besides=replacing)
    if working >= MAX_ACTIVE_KEYS:
        grace = " (a rotated key counts until its grace ends)" if replacing else ""
        raise ApiError(
            ErrorCode.CONFLICT,
            f"You already have {MAX_ACTIVE_KEYS} active API keys, the most allowed{grace}; "
            "revoke one you no longer use first.",
        )


def key_out(row: asyncpg.Record, spend_used: int | None = None) -> ApiKeyOut:
    """A key as the developer sees it (a row with `KEY_CONTROL_COLUMNS`): never the key."""
    permissions = row["permissions"] or {}
    expires = row["expires_at"]
    if expires is None and isinstance(permissions.get("expires_at"), str):
        expires = datetime.fromisoformat(permissions["expires_at"])  # a playground key's
    cap = row["spend_cap_units"]
    agents = row["allowed_agents"]
    return ApiKeyOut(
        id=str(row["id"]),
        name=row["name"],
        prefix=row["key_prefix"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked=row["revoked_at"] is not None,
        revoked_at=row["revoked_at"],
        scope=permissions.get("scope"),
        expires_at=expires,
        spend_cap=SpendCap(cap, row["spend_cap_period"]) if cap is not None else None,
        spend_used=(spend_used or 0) if cap is not None else None,
        rate_limit=row["rate_limit"],
        allowed_agents=[str(agent) for agent in agents] if agents else None,
    )


async def spend_used(
    state: ControlPlaneState, shard: int, rows: list[asyncpg.Record]
) -> dict[str, int]:
    """Key id → units its cap counted in the current period (Redis is the live counter)."""
    now = datetime.now(UTC)
    fields = {
        str(row["id"]): f"{row['id']}:{spend_bucket(row['spend_cap_period'], now)}"
        for row in rows
        if row["spend_cap_units"] is not None
    }
    if not fields:
        return {}
    try:
        values = await state.redis.hmget(keyspace.key_spend(shard), list(fields.values()))
    except RedisError:
        return {}
    return {key: int(value or 0) for key, value in zip(fields, values, strict=True)}


async def _locked_key(connection: Any, principal: Principal, key_id: str) -> asyncpg.Record:
    if not is_uuid(key_id):
        raise _not_found()
    row = await repository.key_for_update(connection, principal.user_id, key_id)
    if row is None or (row["permissions"] or {}).get("scope") == repository.SESSION_SCOPE:
        raise _not_found()  # the playground's keys are the dashboard's own
    if row["revoked_at"] is not None:
        raise ApiError(ErrorCode.CONFLICT, "This API key is revoked; its controls are final.")
    return row


def _refuse_expired(row: asyncpg.Record) -> None:
    if row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC):
        raise ApiError(ErrorCode.CONFLICT, "This API key has expired; create a new one.")


def _agents(patch: KeyControlsPatch, row: asyncpg.Record) -> list[str] | None:
    if patch.allowed_agents is UNSET:
        agents = row["allowed_agents"]
        return [str(agent) for agent in agents] if agents else None
    if patch.allowed_agents is None:
        return None
    return sorted({str(uuid.UUID(agent)) for agent in patch.allowed_agents})


async def update_controls(
    state: ControlPlaneState, principal: Principal, key_id: str, patch: KeyControlsPatch
) -> ApiKeyOut:
    async with state.db.acquire() as connection, connection.transaction():
        row = await _locked_key(connection, principal, key_id)
        cap = row["spend_cap_units"], row["spend_cap_period"]
        if patch.spend_cap is not UNSET:
            cap = (
                (None, None)
                if patch.spend_cap is None
                else (patch.spend_cap.units, patch.spend_cap.period)
            )
        name = row["name"] if patch.name is UNSET else patch.name.strip() or row["name"]
        updated = await repository.set_key_controls(
            connection, key_id, name=name, spend_cap_units=cap[0], spend_cap_period=cap[1],
            rate_limit=row["rate_limit"] if patch.rate_limit is UNSET else patch.rate_limit,
            expires_at=row["expires_at"] if patch.expires_at is UNSET else patch.expires_at,
            allowed_agents=_agents(patch, row),
        )  # fmt: skip
        await gateway_sync.hold_write_through(connection)
        await gateway_sync.write_api_key(
            state.redis, shard=row["redis_shard"], key_hash=row["key_hash"].strip(),
            user_id=principal.user_id, key_id=key_id, revoked=False,
            controls=key_controls_of(updated),
        )  # fmt: skip
    used = await spend_used(state, row["redis_shard"], [updated])
    return key_out(updated, used.get(key_id))


async def rotate(
    state: ControlPlaneState, principal: Principal, key_id: str, request: RotateKeyRequest
) -> CreatedApiKey:
    """A replacement key (same name and controls); the old one expires after the grace."""
    async with state.db.acquire() as connection, connection.transaction():
        if await repository.lock_user(connection, principal.user_id) is None:
            raise _not_found()
        row = await _locked_key(connection, principal, key_id)
        _refuse_expired(row)
        await check_room(connection, principal.user_id, replacing=key_id)
        shard = row["redis_shard"]
        generated = generate_api_key(shard)
        try:
            new = await repository.insert_key(
                connection, user_id=principal.user_id, key_hash=generated.key_hash,
                prefix=generated.prefix, name=row["name"] or "rotated",
            )  # fmt: skip
        except asyncpg.UniqueViolationError:
            raise ApiError(ErrorCode.CONFLICT, "Key generation collided; try again.") from None
        controls = {
            "name": new["name"], "spend_cap_units": row["spend_cap_units"],
            "spend_cap_period": row["spend_cap_period"], "rate_limit": row["rate_limit"],
            "allowed_agents": [str(a) for a in row["allowed_agents"]] if row["allowed_agents"]
            else None,
        }  # fmt: skip
        new_row = await repository.set_key_controls(
            connection, str(new["id"]), expires_at=row["expires_at"], **controls
        )
        grace_end = datetime.now(UTC) + timedelta(seconds=request.grace_seconds)
        if row["expires_at"] is not None:
            grace_end = min(grace_end, row["expires_at"])
        old_row = await repository.set_key_controls(
            connection, key_id, expires_at=grace_end, **{**controls, "name": row["name"]}
        )
        await gateway_sync.hold_write_through(connection)
        for key_hash, the_row in ((generated.key_hash, new_row), (row["key_hash"], old_row)):
            await gateway_sync.write_api_key(
                state.redis, shard=shard, key_hash=key_hash.strip(), user_id=principal.user_id,
                key_id=str(the_row["id"]), revoked=False, controls=key_controls_of(the_row),
            )  # fmt: skip
    return CreatedApiKey(
        id=str(new["id"]), name=new["name"], prefix=new["key_prefix"],
        created_at=new["created_at"], key=generated.plaintext,
    )  # fmt: skip
