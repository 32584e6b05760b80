"""Readers of the OpenAI chat request that the translating adapters (Anthropic, Gemini)
share: content parts, data URLs, stop sequences, tool calls and their arguments, the tool
definitions. What the request parser checked (gateway/chat_request.py) is typed in
`openai_wire` and not checked again; what it forwards unchecked is checked here."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.providers.errors import ProviderRejectedRequest
from gateway.providers.openai_wire import ChatMessage, ContentPart


def content_parts(content: str | list[ContentPart] | None) -> list[ContentPart]:
    """A message's content as a list of OpenAI content parts (a string is one text part)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return content or []


def texts_of(content: str | list[ContentPart] | None, provider: str) -> list[str]:
    """The texts of a message that may hold only text (system, developer, tool)."""
    texts = []
    for part in content_parts(content):
        if part["type"] != "text":
            raise unsupported(provider, f"{part['type']} content in this message")
        texts.append(part.get("text", ""))
    return texts


def image_url_of(part: ContentPart) -> str:
    """An image_url part's URL ("" when it has none)."""
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else None
    return url if isinstance(url, str) else ""


def data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a `data:<type>;base64,<data>` URL, else None."""
    if not url.startswith("data:"):
        return None
    header, comma, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if not comma or encoding != "base64" or not media_type:
        return None
    return media_type, data


def stop_sequences(stop: str | list[str] | None) -> list[str]:
    if isinstance(stop, str):
        return [stop]
    return stop or []


def tool_calls_of(message: ChatMessage, provider: str) -> list[tuple[str, str, dict[str, Any]]]:
    """An assistant message's function calls as (id, name, parsed arguments)."""
    calls = message.get("tool_calls")
    if not calls:
        return []
    if not isinstance(calls, list):
        raise unsupported(provider, "this kind of tool call")
    out = []
    for call in calls:
        if not isinstance(call, dict) or call.get("type", "function") != "function":
            raise unsupported(provider, "this kind of tool call")
        function = call.get("function") or {}
        if not isinstance(function, dict):
            raise unsupported(provider, "this kind of tool call")
        out.append(
            (str(call.get("id", "")), str(function.get("name", "")), _arguments(function, provider))
        )
    return out


def _arguments(function: dict[str, Any], provider: str) -> dict[str, Any]:
    """The parsed arguments of an OpenAI tool call (a JSON object encoded as a string)."""
    raw = function.get("arguments") or "{}"
    try:
        arguments = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        raise unsupported(provider, "tool call arguments that are not JSON") from None
    if not isinstance(arguments, dict):
        raise unsupported(provider, "tool call arguments that are not a JSON object")
    return arguments


def functions_of(tools: list[dict[str, object]], provider: str) -> list[dict[str, object]]:
    """The `function` of each tool definition (only function tools are translated)."""
    functions = []
    for tool in tools:
        function = tool.get("function") or {}
        if tool.get("type", "function") != "function" or not isinstance(function, dict):
            raise unsupported(provider, "this kind of tool")
        functions.append(function)
    return functions


def chosen_function(choice: str | dict[str, object] | None) -> str | None:
    """The function name a `tool_choice` object names, else None."""
    function = choice.get("function") if isinstance(choice, dict) else None
    return str(function.get("name", "")) if isinstance(function, dict) else None


def unsupported(provider: str, what: str) -> ProviderRejectedRequest:
    return ProviderRejectedRequest(f"The {provider} provider does not accept {what}.")
