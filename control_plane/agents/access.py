"""Which agent a request may change, and the gateway's record of it.

Every change to what the gateway admits on (status, current version, price) writes the
gateway's Redis agent record inside the Postgres transaction, after the agent row was locked
and just before the commit (control_plane/gateway_sync.py): publish, unpublish and updates
hold on the very next gateway request. If Redis refuses, the transaction rolls back (503
`50302`). If the commit fails after Redis was written, the Redis record is deleted, so the
gateway reloads the truth from Postgres instead of serving what never committed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
from redis.exceptions import RedisError

from common import keyspace
from common.db import DbConnection
from common.errors import ApiError, ErrorCode
from common.validation import canonical_uuid
from control_plane import gateway_sync
from control_plane.agents import repository
from control_plane.auth.principal import Principal
from control_plane.state import ControlPlaneState

logger = logging.getLogger("agentlink.agents")


def canonical_agent_id(raw: str) -> str:
    """The agent id in its one canonical spelling (lower-case hyphenated UUID): the form the
    envelopes' associated data and the Redis record key use. Not a UUID: no such agent."""
    agent_id = canonical_uuid(raw)
    if agent_id is None:
        raise ApiError(ErrorCode.AGENT_NOT_FOUND)
    return agent_id


def owned(row: asyncpg.Record | None, principal: Principal) -> asyncpg.Record:
    if row is None:
        raise ApiError(ErrorCode.AGENT_NOT_FOUND, "The agent does not exist.")
    if str(row["creator_id"]) != principal.user_id:
        raise ApiError(ErrorCode.AGENT_NOT_OWNED)
    return row


@dataclass
class Locked:
    connection: DbConnection
    row: asyncpg.Record
    agent_id: str
    synced: bool = False


@asynccontextmanager
async def locked_agent(
    state: ControlPlaneState, principal: Principal, raw_agent_id: str
) -> AsyncIterator[Locked]:
    """The caller's agent, its row locked for one transaction (concurrent changes to one
    agent run one after another, so none is lost and versions never collide)."""
    agent_id = canonical_agent_id(raw_agent_id)
    async with state.db.acquire() as connection:
        locked: Locked | None = None
        try:
            async with connection.transaction():
                found = await repository.agent(connection, agent_id, for_update=True)
                row = owned(found, principal)
                locked = Locked(connection, row, agent_id)
                yield locked
        except BaseException:
            if locked is not None and locked.synced:
                await forget(state, agent_id)
            raise


async def sync(state: ControlPlaneState, locked: Locked, row: asyncpg.Record) -> None:
    """Write the gateway's agent record from `row`; the last step before the commit."""
    await gateway_sync.hold_write_through(locked.connection)
    locked.synced = True  # set first: a write that timed out may still have been applied
    await gateway_sync.write_agent(
        state.redis,
        locked.agent_id,
        status=row["status"],
        version=row["version"],
        price_per_call=row["price_per_call"],
        unit_price=state.settings.unit_price,
        knowledge=row["knowledge_record"],
    )


async def forget(state: ControlPlaneState, agent_id: str) -> None:
    """Drop the gateway's record of an agent whose change did not commit: the next gateway
    request reloads it from Postgres, which holds the truth."""
    try:
        await state.redis.delete(keyspace.agent_record(agent_id))
    except RedisError:
        logger.warning(
            "could not drop the gateway record of an agent after a failed commit",
            extra={"agent_id": agent_id, "event": "agent_record_stale"},
        )
