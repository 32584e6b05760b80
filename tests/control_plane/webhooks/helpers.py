"""Shared by the webhook tests: endpoints made as the API makes them, and a deliverer."""

from __future__ import annotations

import dataclasses

import asyncpg
import httpx

from control_plane.webhooks.delivery import Deliverer
from control_plane.webhooks.settings import WebhookSettings
from tests.factories import TEST_KEYRING


def webhook_settings(**changes: object) -> WebhookSettings:
    base = WebhookSettings.from_env(
        {"WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true", "WEBHOOK_BACKOFF_BASE_S": "0"}
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def deliverer(db: asyncpg.Pool, **changes: object) -> Deliverer:
    settings = webhook_settings(**changes)
    client = httpx.AsyncClient(timeout=settings.timeout_s, follow_redirects=False)
    return Deliverer(db, TEST_KEYRING, settings, client=client)


async def register(
    client: httpx.AsyncClient, headers: dict[str, str], url: str, events: list[str], **extra: object
) -> dict[str, object]:
    response = await client.post(
        "/api/v1/webhooks", headers=headers, json={"url": url, "events": events, **extra}
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def drain(deliver: Deliverer, db: asyncpg.Pool, webhook_id: str, rounds: int = 20) -> None:
    """Run the delivery job until the endpoint has nothing pending (retries made due at once)."""
    for _ in range(rounds):
        await db.execute(
            """UPDATE webhook_deliveries SET next_attempt_at = now()
               WHERE webhook_id = $1 AND status = 'pending'""",
            webhook_id,
        )
        await deliver.run_once()
        pending = await db.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1 AND status = 'pending'",
            webhook_id,
        )
        if pending == 0:
            return
    raise AssertionError("deliveries still pending")
