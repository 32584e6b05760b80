"""The developer's account: profile and quota, API keys, usage.

Keys. A new key is generated so that its SHA-256 falls in the owner's Redis shard
(crypto/api_keys.py); only the hash and a display prefix are stored, and the plaintext is
returned once. Creation and revocation write the gateway's key record (gateway_sync) inside
the Postgres transaction, just before it commits: if Redis refuses, nothing is committed
(503 `50302`), so the gateway and Postgres never disagree, and a revoked key is refused by
every gateway instance on its very next request (seed property 12).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from common import keyspace
from common.errors import ApiError, ErrorCode
from common.validation import invalid, is_uuid, money_text
from control_plane import gateway_sync
from control_plane.auth.principal import Principal
from control_plane.developers import key_controls, repository
from control_plane.developers.key_controls import MAX_ACTIVE_KEYS, key_out
from control_plane.developers.schemas import (
    AgentUsage,
    ApiKeyPage,
    CreatedApiKey,
    CreateKeyRequest,
    DayUsage,
    DeveloperProfile,
    KeyListQuery,
    KeyUsage,
    QuotaOut,
    TrialList,
    TrialUsage,
    UsageQuery,
    UsageReport,
    UsageTotals,
)
from control_plane.marketplace.pagination import (
    decode_cursor,
    keyset_page,
    parse_datetime,
    parse_uuid,
)
from control_plane.rows import from_row
from control_plane.state import ControlPlaneState
from control_plane.webhooks import events, outbox
from crypto.api_keys import generate_api_key

# Active (unrevoked) keys a developer may hold at once. Revoked keys do not count.
USAGE_DEFAULT_DAYS = 30
USAGE_MAX_DAYS = 366
_KEYS_CURSOR = "keys"
# repository.usage's GROUPING(agent_id, day, api_key_id) levels.
_BY_AGENT, _BY_DAY, _BY_KEY, _TOTAL = 3, 5, 6, 7


def _key_not_found() -> ApiError:
    # The generic not-found code: the seed's table has none for keys. A key of another
    # developer gets exactly this answer too, so ids cannot be probed.
    return ApiError(ErrorCode.RESOURCE_NOT_FOUND, "No API key with this id.")


async def _live_quota(state: ControlPlaneState, shard: int, user_id: str) -> int | None:
    """The gateway's live balance in Redis; None when it holds none (or Redis is away)."""
    try:
        value: Any = await state.redis.get(keyspace.quota(shard, user_id))
    except RedisError:
        return None
    return None if value is None else int(value)


async def profile(state: ControlPlaneState, principal: Principal) -> DeveloperProfile:
    async with state.db.acquire() as connection:
        row = await repository.profile(connection, principal.user_id)
    if row is None:
        raise ApiError(ErrorCode.USER_NOT_FOUND)
    ledger = row["total_quota"] + row["free_quota"] - row["used_quota"]
    live = await _live_quota(state, row["redis_shard"], principal.user_id)
    quota = QuotaOut(
        total=row["total_quota"],
        used=row["used_quota"],
        free=row["free_quota"],
        remaining=max(0, live if live is not None else ledger),
    )
    return from_row(DeveloperProfile, row, quota=quota, max_active_keys=MAX_ACTIVE_KEYS)


async def list_keys(
    state: ControlPlaneState, principal: Principal, query: KeyListQuery
) -> ApiKeyPage:
    after = None
    if query.cursor is not None:
        created_at, key_id = decode_cursor(query.cursor, _KEYS_CURSOR, (parse_datetime, parse_uuid))
        after = (created_at, key_id)
    async with state.db.acquire() as connection:
        rows = await repository.list_keys(
            connection, principal.user_id, include_revoked=query.include_revoked,
            limit=query.limit, after=after, scope=query.scope,
        )  # fmt: skip
    page, next_cursor = keyset_page(rows, query.limit, _KEYS_CURSOR)
    used = await key_controls.spend_used(state, principal.shard, page)
    return ApiKeyPage([key_out(row, used.get(str(row["id"]))) for row in page], next_cursor)


async def create_key(
    state: ControlPlaneState, principal: Principal, request: CreateKeyRequest
) -> CreatedApiKey:
    name = request.name.strip()
    if not name:
        raise invalid("name", "The name must not be blank")
    # Made before the user's row is locked (about a thousand hashes; concurrent requests of
    # one developer queue on that lock) and made again in the rare case the token's shard
    # is not the row's.
    generated = generate_api_key(principal.shard)
    async with state.db.acquire() as connection, connection.transaction():
        user = await repository.lock_user(connection, principal.user_id)
        if user is None:
            raise ApiError(ErrorCode.USER_NOT_FOUND)
        await key_controls.check_room(connection, principal.user_id)
        shard = user["redis_shard"]  # Postgres is authoritative, not the token's claim
        if generated.shard != shard:
            generated = generate_api_key(shard)
        try:
            row = await repository.insert_key(
                connection, user_id=principal.user_id, key_hash=generated.key_hash,
                prefix=generated.prefix, name=name,
            )  # fmt: skip
        except asyncpg.UniqueViolationError:  # a 2^-180 hash collision: refuse, never reuse
            raise ApiError(ErrorCode.CONFLICT, "Key generation collided; try again.") from None
        await gateway_sync.hold_write_through(connection)
        await gateway_sync.write_api_key(
            state.redis, shard=shard, key_hash=generated.key_hash,
            user_id=principal.user_id, key_id=str(row["id"]), revoked=False,
        )  # fmt: skip
    return from_row(CreatedApiKey, row, prefix=row["key_prefix"], key=generated.plaintext)


async def revoke_key(state: ControlPlaneState, principal: Principal, key_id: str) -> None:
    """Revoke one of the caller's keys. Revoking a revoked key again is a no-op success."""
    if not is_uuid(key_id):
        raise _key_not_found()
    async with state.db.acquire() as connection, connection.transaction():
        row = await repository.key_for_update(connection, principal.user_id, key_id)
        if row is None:
            raise _key_not_found()
        await repository.revoke_key(connection, key_id)
        if row["revoked_at"] is None:
            await outbox.enqueue(
                connection, [principal.user_id], events.KEY_REVOKED,
                {"key_id": key_id, "name": row["name"], "prefix": row["key_prefix"]},
                event_id=f"evt_key_{key_id}_revoked",
            )  # fmt: skip
        # Written even when the key was revoked already: it costs one write and repairs a
        # record that might have been lost with a Redis failover.
        await gateway_sync.hold_write_through(connection)
        await gateway_sync.write_api_key(
            state.redis, shard=row["redis_shard"], key_hash=row["key_hash"].strip(),
            user_id=principal.user_id, key_id=key_id, revoked=True,
        )  # fmt: skip
        # A total cap's spend field has no expiry: it goes with the key (day and month
        # fields expire by themselves, common/records.py SPEND_FIELD_TTL_MS).
        await state.redis.hdel(keyspace.key_spend(row["redis_shard"]), f"{key_id}:t")


def _usage_range(query: UsageQuery) -> tuple[datetime, datetime]:
    end = query.to or datetime.now(UTC)
    start = query.from_ or end - timedelta(days=USAGE_DEFAULT_DAYS)
    if start >= end:
        raise invalid("from", "`from` must be before `to`")
    if end - start > timedelta(days=USAGE_MAX_DAYS):
        raise invalid("from", f"The range is at most {USAGE_MAX_DAYS} days")
    return start, end


def _counts(row: asyncpg.Record | None) -> dict[str, Any]:
    if row is None:
        return {
            "calls": 0, "billable_calls": 0, "successful_calls": 0, "failed_calls": 0,
            "units": 0, "cost_usd": "0", "input_tokens": 0, "output_tokens": 0,
        }  # fmt: skip
    cost: Decimal = row["cost_usd"]
    return {
        "calls": row["calls"],
        "billable_calls": row["billable_calls"],
        "successful_calls": row["successful_calls"],
        "failed_calls": row["failed_calls"],
        "units": row["units"],
        "cost_usd": money_text(cost),
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
    }


def _days(start: datetime, end: datetime) -> list[date]:
    first = start.astimezone(UTC).date()
    last = (end - timedelta(microseconds=1)).astimezone(UTC).date()
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def _whole_hours(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The whole UTC hours inside [start, end), as [first, last); empty (end, end) if none."""
    first = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if first < start:
        first += timedelta(hours=1)
    last = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return (first, last) if first < last else (end, end)


async def usage(state: ControlPlaneState, principal: Principal, query: UsageQuery) -> UsageReport:
    """The caller's calls in [from, to), from call_logs: totals, per agent, per UTC day (every
    day of the range, zeros included). Calls still in the usage stream appear once the worker
    has written them, normally within a second."""
    start, end = _usage_range(query)
    async with state.db.acquire() as connection:
        rows = await repository.usage(
            connection, principal.user_id, start, end, _whole_hours(start, end)
        )
        agent_rows = [row for row in rows if row["level"] == _BY_AGENT]
        key_rows = [row for row in rows if row["level"] == _BY_KEY]
        names = await repository.agent_names(
            connection, [str(row["agent_id"]) for row in agent_rows]
        )
        keys = await repository.key_labels(
            connection, principal.user_id, [str(row["api_key_id"]) for row in key_rows]
        )
    total = next((row for row in rows if row["level"] == _TOTAL), None)
    per_day = {row["day"]: row for row in rows if row["level"] == _BY_DAY}
    by_agent = [
        AgentUsage(agent_id=str(row["agent_id"]), agent_name=names.get(str(row["agent_id"])),
                   **_counts(row))
        for row in sorted(agent_rows, key=lambda row: (-row["calls"], str(row["agent_id"])))
    ]  # fmt: skip
    by_day = [DayUsage(date=day, **_counts(per_day.get(day))) for day in _days(start, end)]
    by_key = []
    for row in sorted(key_rows, key=lambda row: (-row["calls"], str(row["api_key_id"]))):
        key = keys.get(str(row["api_key_id"]))
        by_key.append(
            KeyUsage(
                key_id=str(row["api_key_id"]),
                key_name=key["name"] if key else None,
                key_prefix=key["key_prefix"] if key else None,
                scope=key["scope"] if key else None,
                **_counts(row),
            )
        )
    return UsageReport(start, end, UsageTotals(**_counts(total)), by_agent, by_day, by_key)


async def trials(state: ControlPlaneState, principal: Principal) -> TrialList:
    """Free trial calls used per agent: the gateway's live counters where Redis has them,
    else what the worker has recorded in Postgres."""
    limit = state.settings.dashboard.trial_calls
    async with state.db.acquire() as connection:
        used = await repository.trials(connection, principal.user_id)
        try:
            live: dict[Any, Any] = await state.redis.hgetall(
                keyspace.trials(principal.shard, principal.user_id)
            )
        except RedisError:
            live = {}
        for agent, count in live.items():
            name = agent.decode() if isinstance(agent, bytes) else str(agent)
            used[name] = int(count)
        names = await repository.agent_names(connection, [a for a in used if is_uuid(a)])
    items = [
        TrialUsage(agent_id, names.get(agent_id), min(count, limit), max(0, limit - count))
        for agent_id, count in sorted(used.items(), key=lambda item: (-item[1], item[0]))
        if agent_id in names
    ]
    return TrialList(limit, items)
