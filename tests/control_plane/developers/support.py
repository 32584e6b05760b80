"""Helpers shared by the developers, marketplace and reviews tests: call_logs rows written
directly (as the usage worker would)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import asyncpg

from tests.processes import api_state


async def insert_calls(
    db: asyncpg.Pool,
    *,
    user_id: str,
    agent_id: str,
    count: int,
    billable: bool = True,
    status: str = "success",
    units: int = 1,
    cost: Decimal = Decimal("0.01"),
    created_at: datetime | None = None,
    input_tokens: int = 10,
    output_tokens: int = 20,
    api_key_id: str | None = None,
) -> None:
    """`count` call_logs rows for (user, agent); created now() unless `created_at` is given
    (the partitions of the previous, current and next months exist)."""
    if not billable:
        units, cost = 0, Decimal(0)
    await db.execute(
        """INSERT INTO call_logs (request_id, agent_id, agent_version, api_key_id, user_id, units,
                                  billable, input_tokens, output_tokens, latency_ms, status,
                                  cost_usd, created_at)
           SELECT gen_random_uuid()::text, $1, 1, $2, $3, $4, $5, $6, $7, 5, $8, $9,
                  coalesce($10, now())
           FROM generate_series(1, $11)""",
        agent_id,
        api_key_id or str(uuid.uuid4()),
        user_id,
        units,
        billable,
        input_tokens,
        output_tokens,
        status,
        cost,
        created_at,
        count,
    )


# Kept for tests written before tests/processes.py: the one builder is `api_state`.
control_state = api_state
