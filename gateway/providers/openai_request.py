"""Readers of the OpenAI chat request that the translating adapters (Anthropic, Gemini)
share: content parts, data URLs, stop sequences, tool call arguments."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.providers.errors import ProviderRejectedRequest


def content_parts(content: Any) -> list[dict[str, Any]]:
    """A message's content as a list of OpenAI content parts (a string is one text part)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [part for part in content if isinstance(part, dict)]
    return []


def texts_of(content: Any, provider: str) -> list[str]:
    """The texts of a message that may hold only text (system, developer, tool)."""
    texts = []
    for part in content_parts(content):
        if part.get("type") != "text":
            raise unsupported(provider, f"{part.get('type')} content in this message")
        texts.append(str(part.get("text", "")))
    return texts


def data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a `data:<type>;base64,<data>` URL, else None."""
    if not url.startswith("data:"):
        return None
    header, comma, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if not comma or encoding != "base64" or not media_type:
        return None
    return media_type, data


def stop_sequences(stop: Any) -> list[str]:
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list):
        return [item for item in stop if isinstance(item, str)]
    return []


def tool_arguments(call: dict[str, Any], provider: str) -> dict[str, Any]:
    """The parsed arguments of an OpenAI tool call (a JSON object encoded as a string)."""
    raw = (call.get("function") or {}).get("arguments") or "{}"
    try:
        arguments = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        raise unsupported(provider, "tool call arguments that are not JSON") from None
    if not isinstance(arguments, dict):
        raise unsupported(provider, "tool call arguments that are not a JSON object")
    return arguments


def unsupported(provider: str, what: str) -> ProviderRejectedRequest:
    return ProviderRejectedRequest(f"The {provider} provider does not accept {what}.")
