"""The developer's chat request: parse and validate it, then build the upstream request.

Validation happens before admission, so a malformed body costs no quota. The upstream
request puts the creator's system prompt first, then retrieved knowledge, then the
developer's messages (a developer's own system message is allowed, after the creator's).
The agent's parameters are authoritative: what a developer may send, and what happens to
each field, is the table in gateway/parameters.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import cast

import orjson

from common.domain import AgentConfig
from common.errors import ApiError, ErrorCode
from common.validation import INT64_MAX, INT64_MIN, MAX_NESTING
from gateway import parameters
from gateway.call_record import hot_record
from gateway.parameters import FORWARDED, SAMPLING, TOKEN_CAPS
from gateway.parameters import invalid as _invalid
from gateway.providers.openai_wire import (
    ChatCompletionRequest,
    ChatMessage,
    ContentPart,
    ForwardedOptions,
)

MAX_MESSAGES = 512
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_CONTENT_PART_TYPES = frozenset({"text", "image_url", "input_audio", "file"})
_READ_HERE = frozenset({"messages", "stream", "model", "stream_options", *SAMPLING, *TOKEN_CAPS})


@hot_record
class ChatRequest:
    messages: list[ChatMessage]
    stream: bool
    options: ForwardedOptions  # the forwarded parameters, as the developer sent them
    max_tokens: int | None = None  # the lower of max_tokens and max_completion_tokens
    sampling: dict[str, float | int] | None = None  # temperature, top_p as sent
    include_usage: bool = False  # stream_options.include_usage: send the usage chunk


def parse_chat_request(body: bytes) -> ChatRequest:
    return chat_request_of(json_object_body(body))


def json_object_body(body: bytes) -> dict[str, object]:
    """A request body that must be one JSON object (400 `40001` otherwise)."""
    if not body:
        raise ApiError(ErrorCode.INVALID_REQUEST, "The request body is empty; send JSON.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(ErrorCode.INVALID_REQUEST, "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(ErrorCode.INVALID_REQUEST, "The request body must be a JSON object.")
    return data


def chat_request_of(data: dict[str, object]) -> ChatRequest:
    """A decoded chat body (or one an edge built from its own dialect), validated."""
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages", "must be a non-empty array")
    if len(messages) > MAX_MESSAGES:
        raise _invalid("messages", f"at most {MAX_MESSAGES} messages")
    for index, message in enumerate(messages):
        _check_message(index, message)
    stream = data.get("stream")
    if stream is None:
        stream = False
    elif not isinstance(stream, bool):
        raise _invalid("stream", "must be a boolean")
    # Each message checked above is what `ChatMessage` says.
    return _with_parameters(data, cast("list[ChatMessage]", messages), stream)


def _with_parameters(
    data: dict[str, object], messages: list[ChatMessage], stream: bool
) -> ChatRequest:
    """Every other top-level field, by its rule in gateway/parameters.py."""
    options: dict[str, object] = {}
    max_tokens: int | None = None
    sampling: dict[str, float | int] | None = None
    include_usage = False
    for name, value in data.items():
        if value is None:
            continue  # null is "not sent", as in OpenAI's API
        if name in FORWARDED:
            options[name] = _checked_option(name, value)
        elif name not in _READ_HERE:
            parameters.check_refused(name, value)
        elif name in TOKEN_CAPS:
            cap = parameters.token_cap(name, value)
            max_tokens = cap if max_tokens is None else min(max_tokens, cap)
        elif name in SAMPLING:
            sampling = sampling or {}
            sampling[name] = parameters.sampling_value(name, value)
        elif name == "stream_options":
            include_usage = parameters.include_usage_of(value)
    return ChatRequest(
        # Each option checked by its rule in _OPTION_TYPES is what `ForwardedOptions` says.
        messages=messages, stream=stream, options=cast("ForwardedOptions", options),
        max_tokens=max_tokens, sampling=sampling, include_usage=include_usage,
    )  # fmt: skip


def _too_deep(value: object, levels_left: int) -> bool:
    """Whether `value` nests more than `levels_left` more levels of arrays/objects."""
    if isinstance(value, dict):
        items: Iterable[object] = value.values()
    elif isinstance(value, list):
        items = value
    else:
        return False
    if levels_left == 0:
        return True
    # Every message of every call comes here: scalars are skipped without a call each, and
    # a loop, not any() over a generator (its frame is a cost of its own).
    for item in items:  # noqa: SIM110
        if isinstance(item, dict | list) and _too_deep(item, levels_left - 1):
            return True
    return False


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# What each forwarded option may be (OpenAI's types, loosely): the provider's own checks
# answer in its words, so only what would break us, or cost a provider round trip, is here.
_OPTION_TYPES: dict[str, tuple[Callable[[object], bool], str]] = {
    "stop": (lambda v: isinstance(v, str) or (isinstance(v, list) and len(v) <= 4
                                              and all(isinstance(s, str) for s in v)),
             "must be a string or an array of at most 4 strings"),
    "seed": (lambda v: (i := parameters.integral(v)) is not None and INT64_MIN <= i <= INT64_MAX,
             "must be a 64-bit integer"),
    "user": (lambda v: isinstance(v, str), "must be a string"),
    "response_format": (lambda v: isinstance(v, dict), "must be an object"),
    "tools": (lambda v: isinstance(v, list) and all(isinstance(t, dict) for t in v),
              "must be an array of objects"),
    "tool_choice": (lambda v: isinstance(v, str | dict), "must be a string or an object"),
    "presence_penalty": (_is_number, "must be a number"),
    "frequency_penalty": (_is_number, "must be a number"),
    "logit_bias": (lambda v: isinstance(v, dict) and all(_is_number(b) for b in v.values()),
                   "must be an object of numbers"),
    "parallel_tool_calls": (lambda v: isinstance(v, bool), "must be a boolean"),
}  # fmt: skip


def _checked_option(name: str, value: object) -> object:
    is_valid, message = _OPTION_TYPES[name]
    if not is_valid(value):
        raise _invalid(name, message)
    if _too_deep(value, MAX_NESTING):
        raise _invalid(name, f"nests deeper than {MAX_NESTING} levels")
    if name == "seed":
        return parameters.integral(value)  # 7.0 is the integer 7 in JSON
    return value


def _check_message(index: int, message: object) -> None:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise _invalid(where, "must be an object")
    # Forwarded as sent: deep nesting anywhere inside would fail its serialization upstream.
    if _too_deep(message, MAX_NESTING):
        raise _invalid(where, f"nests deeper than {MAX_NESTING} levels")
    role = message.get("role")
    if role not in _ROLES:
        raise _invalid(f"{where}.role", "must be one of " + ", ".join(sorted(_ROLES)))
    content = message.get("content")
    if isinstance(content, str):
        return
    if content is None:
        if role == "assistant" and message.get("tool_calls"):
            return
        raise _invalid(f"{where}.content", "is required")
    if not isinstance(content, list) or not content:
        raise _invalid(f"{where}.content", "must be a string or a non-empty array of parts")
    for part_index, part in enumerate(content):
        part_where = f"{where}.content[{part_index}]"
        if not isinstance(part, dict) or part.get("type") not in _CONTENT_PART_TYPES:
            raise _invalid(part_where, "must be an object with a known type")
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise _invalid(f"{part_where}.text", "must be a string")


def build_upstream_payload(
    config: AgentConfig,
    request: ChatRequest,
    *,
    knowledge: str | None = None,
) -> ChatCompletionRequest:
    """`knowledge`: the retrieved passages' system message (gateway/knowledge.py), if any."""
    messages: list[ChatMessage] = [{"role": "system", "content": config.system_prompt}]
    if knowledge:
        messages.append({"role": "system", "content": knowledge})
    messages.extend(request.messages)
    # The forwarded options first, as sent (mypy reads no TypedDict out of a `**` merge).
    payload = cast(
        "ChatCompletionRequest", {**request.options, "model": config.model, "messages": messages}
    )
    asked = request.sampling or {}
    temperature = _sampling("temperature", config.temperature, asked.get("temperature"))
    if temperature is not None:
        payload["temperature"] = temperature
    top_p = _sampling("top_p", config.top_p, asked.get("top_p"))
    if top_p is not None:
        payload["top_p"] = top_p
    cap = config.max_tokens
    if request.max_tokens is not None and (cap is None or request.max_tokens < cap):
        payload["max_tokens"] = request.max_tokens
    elif cap is not None:
        payload["max_tokens"] = cap
    if request.stream:
        payload["stream"] = True
        # Always ask for usage: metering needs it, whether or not the client asked.
        payload["stream_options"] = {"include_usage": True}
    return payload


def _sampling(name: str, fixed: float | None, asked: float | None) -> float | None:
    """The agent's value when it sets one (a different one asked is refused), else the
    developer's."""
    if fixed is None:
        return asked
    if asked is not None and asked != fixed:
        raise _invalid(name, f"is fixed by this agent at {fixed}")
    return fixed


# Anthropic's prompt-cache mark (ephemeral: its 5-minute cache, renewed by every hit).
CACHE_MARK = {"type": "ephemeral"}


def with_cache_mark(payload: ChatCompletionRequest) -> ChatCompletionRequest:
    """The upstream payload with the agent's prompt (the first system message, as
    `build_upstream_payload` put it, canary frame included) marked for the provider's prompt
    cache: a text part with `cache_control`, OpenRouter's spelling in the OpenAI format,
    which the Anthropic adapter carries onto its system block. Only for providers that read
    it; everything after the prompt (knowledge, the developer's messages) stays unmarked."""
    first, *rest = payload["messages"]
    prompt = first.get("content")
    if not isinstance(prompt, str):  # pragma: no cover - build_upstream_payload wrote a str
        return payload
    marked = payload.copy()
    prompt_part: ContentPart = {"type": "text", "text": prompt, "cache_control": CACHE_MARK}
    marked["messages"] = [{**first, "content": [prompt_part]}, *rest]
    return marked
