"""The guard on a non-streaming OpenAI chat.completion body, and the body that replaces a
leaking one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import orjson

from gateway.leak_guard.json_text import decode_escapes

if TYPE_CHECKING:
    from gateway.leak_guard.index import LeakGuard

WITHHELD_NOTICE: Final = "[response withheld: it repeated the agent's confidential instructions]"
WITHHELD_FINISH_REASON: Final = "content_filter"
# The fields of an assistant message (or a stream's delta) that hold plain text; the
# reasoning fields are what vLLM, DeepSeek and other OpenAI-compatible servers send.
PLAIN_TEXT_FIELDS: Final = ("content", "refusal", "reasoning_content", "reasoning")


def completion_object(body: bytes) -> dict[str, Any] | None:
    """The JSON object of a chat.completion body, parsed once for the guard and the edge
    (gateway/edge.py's `Answer`); None for a body that is not one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def completion_leaks(
    guard: LeakGuard, data: dict[str, Any] | None, canary: str | None = None
) -> bool:
    """True when a non-streaming chat.completion (its JSON object, `completion_object`)
    leaks in any text of any choice. None (not JSON): not an answer the client can read."""
    choices = data.get("choices") if data is not None else None
    for choice in choices if isinstance(choices, list) else ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            for text in message_texts(message):
                if guard.check_text(text, canary):
                    return True
    return False


def message_texts(message: dict[str, Any]) -> Iterator[str]:
    """Every text a model can put in an assistant message: `content` (a string or text
    parts), `refusal`, the reasoning some OpenAI-compatible servers return, each tool call's
    `arguments` and the legacy `function_call`'s, the arguments decoded (they are JSON
    text)."""
    content = message.get("content")
    if isinstance(content, list):  # text parts, as some OpenAI-compatible servers answer
        for part in content:
            text = part.get("text") if isinstance(part, dict) else None
            if isinstance(text, str):
                yield text
    for name in PLAIN_TEXT_FIELDS:
        text = message.get(name)
        if isinstance(text, str):
            yield text
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        arguments = _arguments(call.get("function") if isinstance(call, dict) else None)
        if arguments:
            yield decode_escapes(arguments)
    arguments = _arguments(message.get("function_call"))
    if arguments:
        yield decode_escapes(arguments)


def _arguments(function: Any) -> str | None:
    arguments = function.get("arguments") if isinstance(function, dict) else None
    if arguments is None or isinstance(arguments, str):
        return arguments
    return orjson.dumps(arguments).decode()  # an object where a string belongs: read it too


def withheld_completion(original_body: bytes, *, notice: str = WITHHELD_NOTICE) -> bytes:
    """A non-streaming chat.completion whose answer is replaced by the withheld notice, with
    finish_reason "content_filter"; id, model, created and usage are kept."""
    return orjson.dumps(withheld_object(completion_object(original_body), notice=notice))


def withheld_object(
    original: dict[str, Any] | None, *, notice: str = WITHHELD_NOTICE
) -> dict[str, Any]:
    """`withheld_completion` on the answer's JSON object (`completion_object`), which it
    rewrites in place."""
    data: dict[str, Any] = original if original is not None else {"object": "chat.completion"}
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        choices = [{"index": 0}]
    withheld: list[dict[str, Any]] = []
    for choice in choices:
        index = choice.get("index", 0) if isinstance(choice, dict) else 0
        withheld.append(
            {
                "index": index,
                "message": {"role": "assistant", "content": notice, "refusal": None},
                "logprobs": None,
                "finish_reason": WITHHELD_FINISH_REASON,
            }
        )
    data["choices"] = withheld
    return data
