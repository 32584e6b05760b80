"""Provider adapters: one module per provider wire format, all behind `ChatProvider`.

| name      | module               | wire format                                        |
|-----------|----------------------|----------------------------------------------------|
| openai    | `openai_compatible`  | OpenAI chat completions (passthrough)              |
| anthropic | `anthropic`          | Anthropic Messages API (translated)                |
| google    | `google`             | Gemini generateContent / streamGenerateContent     |
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from gateway.providers.anthropic import AnthropicProvider
from gateway.providers.base import ChatProvider
from gateway.providers.google import GoogleProvider
from gateway.providers.http_client import create_session
from gateway.providers.openai_compatible import OpenAICompatibleProvider
from gateway.settings import GatewaySettings

AdapterFactory = Callable[[str, str, str, aiohttp.ClientSession], ChatProvider]

ADAPTERS: dict[str, AdapterFactory] = {
    "openai": OpenAICompatibleProvider,
    "anthropic": AnthropicProvider,
    "google": GoogleProvider,
}


def build_providers(settings: GatewaySettings) -> dict[str, ChatProvider]:
    """One long-lived HTTP session per configured provider, created once at start-up."""
    providers: dict[str, ChatProvider] = {}
    for endpoint in settings.providers:
        factory = ADAPTERS.get(endpoint.name)
        if factory is not None:
            providers[endpoint.name] = factory(
                endpoint.name, endpoint.base_url, endpoint.api_key, create_session(settings)
            )
    return providers
