"""Provider adapters: one module per provider wire format, all behind `ChatProvider`."""

from __future__ import annotations

import httpx

from gateway.providers.base import ChatProvider
from gateway.providers.openai_compatible import OpenAICompatibleProvider
from gateway.settings import GatewaySettings


def build_providers(settings: GatewaySettings) -> dict[str, ChatProvider]:
    """One long-lived client per configured provider, created once at start-up."""
    timeout = httpx.Timeout(
        connect=settings.connect_timeout_s,
        read=settings.stream_idle_timeout_s,
        write=settings.upstream_timeout_s,
        pool=settings.connect_timeout_s,
    )
    providers: dict[str, ChatProvider] = {}
    for endpoint in settings.providers:
        if endpoint.name == "openai":
            providers[endpoint.name] = OpenAICompatibleProvider(
                endpoint.name, endpoint.base_url, endpoint.api_key, timeout=timeout
            )
    return providers
