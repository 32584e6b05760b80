"""The webhook outbox: `enqueue` writes one delivery per subscribed endpoint, with the caller's
connection, inside the caller's transaction. The event therefore exists exactly when the change
it reports committed: no event for a rolled-back change, none lost if a process dies between
the change and the delivery. The worker delivers (delivery.py).

Call it from any domain that makes an event, e.g. payments crediting quota:

    async with connection.transaction():
        ...  # credit the units
        await outbox.enqueue(connection, [user_id], PAYMENT_SUCCEEDED,
                             {"payment_id": ..., "amount_usd": "10.00", "units": 1000},
                             event_id=f"evt_payment_{payment_id}_succeeded")

A stable `event_id` (derived from what happened) makes enqueuing the same event twice a no-op
per endpoint; without one, a fresh id is made. quota.low / quota.exhausted are written by a
trigger on `quotas` (migration 0007) with the same table, so no code path can forget them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from common.db import DbConnection


def new_event_id() -> str:
    """`evt_` + 32 hex digits, the shape SQL's new_event_id() makes too."""
    return f"evt_{uuid.uuid4().hex}"


async def enqueue(
    connection: DbConnection,
    user_ids: Sequence[str],
    event_type: str,
    data: dict[str, Any],
    *,
    event_id: str | None = None,
) -> int:
    """One delivery per active endpoint of `user_ids` subscribed to `event_type`; returns how
    many were written (0 when nobody listens)."""
    event_id = event_id or new_event_id()
    status: str = await connection.execute(
        """INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, payload)
           SELECT w.id, $3, $2, $4 FROM webhooks w
           WHERE w.user_id = ANY($1::uuid[]) AND w.active AND w.events ? $2
           ON CONFLICT (webhook_id, event_id) DO NOTHING""",
        list(user_ids),
        event_type,
        event_id,
        data,
    )
    return int(status.rsplit(" ", 1)[1])


async def enqueue_for_agent(
    connection: DbConnection,
    agent_id: str,
    creator_id: str,
    event_type: str,
    data: dict[str, Any],
    *,
    event_id: str | None = None,
) -> int:
    """An agent event: to its creator and to every developer who ever called it (the usage
    rollups' developer sets), those of them with an endpoint subscribed."""
    event_id = event_id or new_event_id()
    status: str = await connection.execute(
        """INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, payload)
           SELECT w.id, $4, $3, $5 FROM webhooks w
           WHERE w.active AND w.events ? $3
             AND (w.user_id = $2 OR w.user_id IN (
                 SELECT user_id FROM usage_agent_developers_monthly WHERE agent_id = $1))
           ON CONFLICT (webhook_id, event_id) DO NOTHING""",
        agent_id,
        creator_id,
        event_type,
        event_id,
        data,
    )
    return int(status.rsplit(" ", 1)[1])
