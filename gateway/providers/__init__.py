"""Provider adapters: one module per provider wire format, all behind `ChatProvider`."""

from __future__ import annotations

from gateway.providers.base import ChatProvider
from gateway.providers.http_client import create_session
from gateway.providers.openai_compatible import OpenAICompatibleProvider
from gateway.settings import GatewaySettings


def build_providers(settings: GatewaySettings) -> dict[str, ChatProvider]:
    """One long-lived HTTP session per configured provider, created once at start-up."""
    providers: dict[str, ChatProvider] = {}
    for endpoint in settings.providers:
        if endpoint.name == "openai":
            providers[endpoint.name] = OpenAICompatibleProvider(
                endpoint.name, endpoint.base_url, endpoint.api_key, create_session(settings)
            )
    return providers
