"""Webhook delivery: the worker's job that drains the outbox (`webhook_deliveries`).

Each run claims due deliveries with FOR UPDATE SKIP LOCKED and leases them (attempts + 1,
next_attempt_at = now + WEBHOOK_LEASE_S) in a transaction of its own, then POSTs them. A worker
that dies mid-delivery leaves the lease, and the delivery is attempted again once it expires:
delivery is at least once, and every attempt carries the same event id and the same body, so
receivers dedupe on the id (`AgentLink-Event-Id`, and `id` in the body).

An attempt: the endpoint's URL is checked and resolved (ssrf.py) and the request goes to the
checked address; redirects are followed by hand, at most 3, each hop checked the same way. The
body is signed with the endpoint's secret in `AgentLink-Signature` (crypto/webhook_signing.py:
`t=<unix time>,v1=<HMAC-SHA256 of "<t>.<body>">`, fresh per attempt). A 2xx is delivered.
Anything else is retried after base x 2^(n-1) seconds (+-25% jitter, capped), up to
WEBHOOK_MAX_RETRIES retries, then the delivery is failed (property 24). Every attempt is logged
(status, response code, latency, error) for the owner. WEBHOOK_DISABLE_AFTER_FAILURES failed
deliveries in a row disable the endpoint with the reason; its pending deliveries wait.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import httpx

from control_plane.webhooks import events, ssrf
from control_plane.webhooks.settings import WebhookSettings
from crypto.envelope import KeyRing
from crypto.webhook_signing import sign

logger = logging.getLogger("agentlink.worker.webhooks")

SIGNATURE_HEADER = "AgentLink-Signature"
MAX_REDIRECTS = 3
_CONCURRENCY = 16
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def secret_associated_id(webhook_id: str) -> str:
    """What an endpoint's secret is sealed to: its envelope cannot be moved to another row."""
    return f"webhook:{webhook_id}"


def retry_delay(attempt: int, settings: WebhookSettings, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based)."""
    jitter: float = (rng or random).uniform(0.75, 1.25)
    base: float = min(settings.backoff_max_s, settings.backoff_base_s * 2.0 ** (attempt - 1))
    return base * jitter


@dataclass(frozen=True, slots=True)
class Attempt:
    status_code: int | None
    latency_ms: int
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(slots=True)
class DeliveryRun:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    disabled: int = 0


class Deliverer:
    """Holds what a delivery needs for the worker's lifetime: one HTTP client, the key ring."""

    def __init__(
        self,
        db: asyncpg.Pool,
        keyring: KeyRing,
        settings: WebhookSettings,
        *,
        client: httpx.AsyncClient | None = None,
        resolver: ssrf.Resolver = ssrf.system_resolver,
        allowed: Callable[[ssrf.IPAddress], bool] = ssrf.is_public,
    ) -> None:
        self._db = db
        self._keyring = keyring
        self._settings = settings
        self._client = client or httpx.AsyncClient(
            timeout=settings.timeout_s, follow_redirects=False, trust_env=False
        )
        self._resolver = resolver
        self._allowed = allowed

    async def aclose(self) -> None:
        await self._client.aclose()

    async def run_once(self, limit: int = 100) -> DeliveryRun:
        """Attempt every due delivery once (up to `limit`)."""
        run = DeliveryRun()
        enabled = await self._db.fetchval(
            "SELECT enabled FROM feature_flags WHERE key = 'enable_webhooks'"
        )
        if enabled is False:
            return run
        claimed = await self._db.fetch(
            """UPDATE webhook_deliveries d
               SET attempts = d.attempts + 1, last_attempt_at = now(),
                   next_attempt_at = now() + make_interval(secs => $1)
               FROM (SELECT d2.id FROM webhook_deliveries d2
                     JOIN webhooks w2 ON w2.id = d2.webhook_id
                     WHERE d2.status = 'pending' AND d2.next_attempt_at <= now() AND w2.active
                     ORDER BY d2.next_attempt_at LIMIT $2
                     FOR UPDATE OF d2 SKIP LOCKED) due, webhooks w
               WHERE d.id = due.id AND w.id = d.webhook_id
               RETURNING d.id, d.webhook_id, d.event_id, d.event_type, d.payload, d.created_at,
                         d.attempts, w.url, w.secret_encrypted""",
            self._settings.lease_s,
            limit,
        )
        gate = asyncio.Semaphore(_CONCURRENCY)

        async def one(row: asyncpg.Record) -> None:
            async with gate:
                await self._deliver(row, run)

        await asyncio.gather(*(one(row) for row in claimed))
        return run

    async def _deliver(self, row: asyncpg.Record, run: DeliveryRun) -> None:
        webhook_id = str(row["webhook_id"])
        secret = self._keyring.decrypt(
            row["secret_encrypted"], agent_id=secret_associated_id(webhook_id), version=1
        )
        body = events.body(row["event_id"], row["event_type"], row["created_at"], row["payload"])
        attempt = await self.post(row["url"], body, secret, row["event_id"], row["event_type"])
        await self._record(row, attempt, run)

    async def post(
        self, url: str, body: bytes, secret: bytes, event_id: str, event_type: str
    ) -> Attempt:
        """One attempt (with its redirects) at delivering `body` to `url`."""
        started = time.perf_counter()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "AgentLink-Webhooks/1",
            "AgentLink-Event-Id": event_id,
            "AgentLink-Event-Type": event_type,
            SIGNATURE_HEADER: sign(secret, body, int(time.time())),
        }
        try:
            for _ in range(MAX_REDIRECTS + 1):
                target = await ssrf.resolve(
                    url,
                    allow_private=self._settings.allow_private_addresses,
                    resolver=self._resolver,
                    allowed=self._allowed,
                )
                extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
                response = await self._client.post(
                    target.connect_url,
                    content=body,
                    headers={**headers, "Host": target.host_header},
                    extensions=extensions,
                )
                await response.aclose()
                location = response.headers.get("location")
                if response.status_code not in _REDIRECTS or not location:
                    return Attempt(response.status_code, _elapsed_ms(started), None)
                url = str(httpx.URL(url).join(location))
            return Attempt(None, _elapsed_ms(started), f"more than {MAX_REDIRECTS} redirects")
        except ssrf.UnsafeDestination as error:
            return Attempt(None, _elapsed_ms(started), f"refused: {error}")
        except httpx.TimeoutException:
            return Attempt(None, _elapsed_ms(started), "timed out")
        except httpx.HTTPError as error:
            return Attempt(None, _elapsed_ms(started), f"{type(error).__name__}: {error}"[:500])

    async def _record(self, row: asyncpg.Record, attempt: Attempt, run: DeliveryRun) -> None:
        settings = self._settings
        last = not attempt.delivered and row["attempts"] > settings.max_retries
        async with self._db.acquire() as connection, connection.transaction():
            # Guarded by the attempt number: a worker whose lease ran out and was overtaken
            # records its attempt but does not overwrite the newer one's outcome.
            current = await connection.fetchval(
                """UPDATE webhook_deliveries
                   SET status = $3, last_status_code = $4, last_error = $5,
                       last_latency_ms = $6, delivered_at = CASE WHEN $3 = 'delivered'
                                                               THEN now() END,
                       next_attempt_at = CASE WHEN $3 = 'pending' THEN now() + $7
                                              ELSE next_attempt_at END
                   WHERE id = $1 AND attempts = $2 AND status = 'pending'
                   RETURNING 1""",
                row["id"],
                row["attempts"],
                "delivered" if attempt.delivered else "failed" if last else "pending",
                attempt.status_code,
                attempt.error,
                attempt.latency_ms,
                timedelta(seconds=retry_delay(row["attempts"], settings)),
            )
            await connection.execute(
                """INSERT INTO webhook_delivery_attempts (delivery_id, attempt, status_code,
                                                          latency_ms, error)
                   VALUES ($1, $2, $3, $4, $5)""",
                row["id"],
                row["attempts"],
                attempt.status_code,
                attempt.latency_ms,
                attempt.error,
            )
            if current is None:
                return
            if attempt.delivered:
                run.delivered += 1
                await connection.execute(
                    "UPDATE webhooks SET consecutive_failures = 0 WHERE id = $1"
                    " AND consecutive_failures <> 0",
                    row["webhook_id"],
                )
            elif not last:
                run.retried += 1
            else:
                run.failed += 1
                reason = (
                    f"{settings.disable_after_failures} deliveries in a row failed; the last "
                    f"got {attempt.status_code or attempt.error}"
                )
                disabled = await connection.fetchval(
                    """UPDATE webhooks SET consecutive_failures = consecutive_failures + 1,
                              active = consecutive_failures + 1 < $2,
                              disabled_reason = CASE WHEN consecutive_failures + 1 >= $2
                                                     THEN $3 END,
                              disabled_at = CASE WHEN consecutive_failures + 1 >= $2
                                                 THEN now() END
                       WHERE id = $1 RETURNING NOT active""",
                    row["webhook_id"],
                    settings.disable_after_failures,
                    reason[:1000],
                )
                if disabled:
                    run.disabled += 1
                    logger.warning(
                        "webhook %s disabled: %s",
                        row["webhook_id"],
                        reason,
                        extra={"event": "webhook_disabled"},
                    )


def _elapsed_ms(started: float) -> int:
    return max(0, round((time.perf_counter() - started) * 1000))
