"""The knowledge version: one number per agent that changes whenever what retrieval can see
for the agent changes (a file became ready, a ready file was deleted, chunks were
re-embedded). It reaches the gateway in the agent record admission reads with every call,
written through inside the change's transaction like every gateway record
(control_plane/gateway_sync.py); the gateway keys its retrieval cache on it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import asyncpg
from redis.exceptions import RedisError

from common import keyspace
from common.db import DbConnection
from common.redis_store import RedisClient
from control_plane import gateway_sync
from control_plane.knowledge import repository

logger = logging.getLogger("agentlink.knowledge")


class KnowledgeChange:
    """One transaction changing an agent's knowledge base, its agent row locked."""

    def __init__(self, connection: DbConnection, agent: asyncpg.Record) -> None:
        self.connection = connection
        self.agent = agent
        self.synced = False

    async def bump(self, redis: RedisClient, unit_price: Decimal) -> int:
        """A new knowledge version, written to the gateway's agent record: the last step
        before the commit (a Redis failure rolls the change back with 503 `50302`)."""
        row = await repository.bump_knowledge_version(self.connection, str(self.agent["id"]))
        await gateway_sync.hold_write_through(self.connection)
        self.synced = True  # set first: a write that timed out may still have been applied
        await gateway_sync.write_agent(
            redis,
            str(self.agent["id"]),
            status=row["status"],
            version=row["version"],
            price_per_call=row["price_per_call"],
            unit_price=unit_price,
            knowledge=row["knowledge_record"],
        )
        version: int = row["knowledge_version"]
        return version


@asynccontextmanager
async def knowledge_change(
    db: asyncpg.Pool, redis: RedisClient, agent_id: str
) -> AsyncIterator[KnowledgeChange | None]:
    """A transaction with the agent's row locked (None: no such agent). If the transaction
    fails after the gateway record was written, the record is dropped, so the gateway reloads
    the truth from Postgres."""
    async with db.acquire() as connection:
        change: KnowledgeChange | None = None
        try:
            async with connection.transaction():
                agent = await repository.agent_for_update(connection, agent_id)
                change = None if agent is None else KnowledgeChange(connection, agent)
                yield change
        except BaseException:
            if change is not None and change.synced:
                await _forget(redis, agent_id)
            raise


async def _forget(redis: RedisClient, agent_id: str) -> None:
    try:
        await redis.delete(keyspace.agent_record(agent_id))
    except RedisError:
        logger.warning(
            "could not drop the gateway record of an agent after a failed commit",
            extra={"agent_id": agent_id, "event": "agent_record_stale"},
        )
