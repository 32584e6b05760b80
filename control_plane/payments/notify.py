"""Developer webhooks about payments: `payment.succeeded` and `payment.refunded`.

Called inside the transaction that credits or takes back, so an event is emitted exactly when
the change commits. `emit_developer_event` is the one place that hands events to the
outgoing-webhook outbox (`control_plane/webhooks/outbox.py`: `webhook_deliveries` rows written
in the same transaction, delivered by the worker).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from common.db import DbConnection
from control_plane.webhooks import events, outbox


def _payment_data(payment: asyncpg.Record) -> dict[str, Any]:
    return {
        "payment_id": str(payment["id"]),
        "package": payment["package"],
        "amount_usd": str(payment["amount_usd"]),
        "currency": payment["currency"],
        "provider": payment["payment_method"],
        "units": payment["quota_purchased"],
    }


async def payment_succeeded(
    connection: DbConnection, payment: asyncpg.Record, *, units: int
) -> None:
    data = {**_payment_data(payment), "units_credited": units}
    await emit_developer_event(
        connection, str(payment["user_id"]), events.PAYMENT_SUCCEEDED, data,
        event_id=f"evt_payment_{payment['id']}_succeeded",  # one per payment, however often
    )  # fmt: skip


async def payment_refunded(
    connection: DbConnection, payment: asyncpg.Record, *, units: int, lost: int, reason: str
) -> None:
    data = {**_payment_data(payment), "units_taken_back": units - lost, "units_lost": lost,
            "reason": reason}  # fmt: skip
    await emit_developer_event(connection, str(payment["user_id"]), events.PAYMENT_REFUNDED, data)


async def emit_developer_event(
    connection: DbConnection,
    user_id: str,
    event_type: str,
    data: dict[str, Any],
    *,
    event_id: str | None = None,
) -> None:
    """The single call site for the developer-webhook outbox."""
    await outbox.enqueue(connection, [user_id], event_type, data, event_id=event_id)
