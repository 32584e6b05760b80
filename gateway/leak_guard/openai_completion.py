"""The guard on a non-streaming OpenAI chat.completion body, and the body that replaces a
leaking one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson

if TYPE_CHECKING:
    from gateway.leak_guard.index import LeakGuard

WITHHELD_NOTICE: Final = "[response withheld: it repeated the agent's confidential instructions]"
WITHHELD_FINISH_REASON: Final = "content_filter"


def completion_leaks(guard: LeakGuard, body: bytes, canary: str | None = None) -> bool:
    """True when a non-streaming chat.completion body leaks in any choice's content."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False  # not an answer the client can read either
    choices = data.get("choices") if isinstance(data, dict) else None
    for choice in choices if isinstance(choices, list) else ():
        message = choice.get("message") if isinstance(choice, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str) and guard.check_text(content, canary):
            return True
    return False


def withheld_completion(original_body: bytes, *, notice: str = WITHHELD_NOTICE) -> bytes:
    """A non-streaming chat.completion whose answer is replaced by the withheld notice, with
    finish_reason "content_filter"; id, model, created and usage are kept."""
    try:
        data = orjson.loads(original_body)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        data = {"object": "chat.completion"}
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
    return orjson.dumps(data)
