"""What a fake was sent (API requests) and what it sent (webhook deliveries), for tests."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx

from fake_payments.config import FakeConfig

_RECORDED_HEADERS = ("authorization", "idempotency-key", "stripe-version", "x-cc-api-key",
                     "x-cc-version", "content-type", "user-agent")  # fmt: skip


def mask(value: str) -> str:
    """API keys are recorded by their shape only: enough to assert on, nothing to leak."""
    return value[:12] + "…" if len(value) > 12 else value


@dataclass
class Recorder:
    requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))
    deliveries: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))

    def record_request(self, method: str, path: str, headers: dict[str, str], body: Any) -> None:
        kept = {name: headers[name] for name in _RECORDED_HEADERS if name in headers}
        for secret in ("authorization", "x-cc-api-key"):
            if secret in kept:
                kept[secret] = mask(kept[secret])
        self.requests.append({"method": method, "path": path, "headers": kept, "body": body})

    def clear(self) -> None:
        self.requests.clear()
        self.deliveries.clear()


class WebhookSender:
    """POSTs signed events to the configured URL and records each attempt's answer."""

    def __init__(self, config: FakeConfig, recorder: Recorder) -> None:
        self._config = config
        self._recorder = recorder
        self._client: httpx.AsyncClient | None = None

    async def send(
        self, event_id: str, event_type: str, body: bytes, headers: dict[str, str]
    ) -> dict[str, Any]:
        delivery: dict[str, Any] = {
            "event_id": event_id, "type": event_type, "url": self._config.webhook_url,
        }  # fmt: skip
        if self._config.webhook_url is None:
            delivery.update(status=None, response=None, error="no webhook URL configured")
        else:
            if self._client is None:
                self._client = httpx.AsyncClient(timeout=30)
            try:
                response = await self._client.post(
                    self._config.webhook_url, content=body, headers=headers
                )
                delivery.update(status=response.status_code, response=response.text[:2000])
            except httpx.HTTPError as error:
                delivery.update(status=None, response=None, error=type(error).__name__)
        self._recorder.deliveries.append(delivery)
        return delivery

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
