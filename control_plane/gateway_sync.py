"""Write-through of the records the gateway admits calls with (layout: common/keyspace.py).

The control plane writes these authoritatively, inside the Postgres transaction that makes
the change and before it commits: if Redis refuses, the transaction rolls back and the
caller gets 503 `50302`, so Postgres and the gateway never disagree. A gateway that filled a
record from an older read never overwrites these writes (fill_record.lua only fills absent
records), so publish, unpublish, revocation and suspension hold on the very next request,
on every gateway instance.
"""

from __future__ import annotations

from decimal import Decimal

from redis.exceptions import RedisError

from common import keyspace
from common.db import DbConnection
from common.errors import ApiError, ErrorCode
from common.records import NO_CONTROLS, AgentRecord, KeyControls, KeyRecord, UserRecord, UserSession
from common.redis_store import RedisClient

# pg advisory lock id "AGLKWTHR": record write-throughs (shared) vs. a cache clear (exclusive).
WRITE_THROUGH_LOCK = 0x41474C4B_57544852


async def hold_write_through(connection: DbConnection) -> None:
    """Call inside the transaction, before writing gateway records. A cache clear
    (admin/system.py) takes this lock exclusively, so it cannot run between a record write and
    its commit — which would let a gateway reload the old committed row and cache it."""
    await connection.execute("SELECT pg_advisory_xact_lock_shared($1)", WRITE_THROUGH_LOCK)


async def _write(
    redis: RedisClient, name: str, record: KeyRecord | UserRecord | AgentRecord
) -> None:
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hset(name, mapping=record.to_fields())  # type: ignore[arg-type]
            pipe.expire(name, record.ttl_s)
            await pipe.execute()
    except RedisError:
        raise ApiError(ErrorCode.STORAGE_UNAVAILABLE) from None


async def write_agent(
    redis: RedisClient,
    agent_id: str,
    *,
    status: str,
    version: int,
    price_per_call: Decimal,
    unit_price: Decimal,
    knowledge: int | None = None,
) -> None:
    """`knowledge`: the record's knowledge version (common/knowledge/records.py); None keeps
    what the record holds (status changes that do not concern it)."""
    record = AgentRecord.priced(
        status=status, version=version, price_per_call=price_per_call, unit_price=unit_price,
        knowledge=knowledge,
    )  # fmt: skip
    await _write(redis, keyspace.agent_record(agent_id), record)


async def write_api_key(
    redis: RedisClient,
    *,
    shard: int,
    key_hash: str,
    user_id: str,
    key_id: str,
    revoked: bool,
    controls: KeyControls = NO_CONTROLS,
) -> None:
    record = KeyRecord.of(user_id=user_id, key_id=key_id, revoked=revoked, controls=controls)
    await _write(redis, keyspace.api_key_record(shard, key_hash), record)


async def write_user(
    redis: RedisClient,
    *,
    shard: int,
    user_id: str,
    status: str,
    tier: str,
    session: UserSession | None = None,
) -> None:
    """`session`: the fields access tokens are checked against; None keeps the record's."""
    await _write(redis, keyspace.user_record(shard, user_id), UserRecord(status, tier, session))
