"""What the mock answers: the request's texts in, the reply text and token usage out.

Where the reply goes: the answer's text by default; with ``tool_call=<name>`` (or
``tool_arguments=<JSON text>``) a tool call whose arguments are ``{"text": <reply>}`` (or
that JSON text, byte for byte); with ``refusal`` the provider's refusal (OpenAI's
``refusal`` field, Anthropic's ``refusal`` stop reason, Gemini's ``SAFETY`` finish)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from mock_provider.config import MockConfig
from mock_provider.controls import ControlError, Controls, strip_directives

DEFAULT_TOOL = "lookup"


class BadRequest(ValueError):
    """The request body is not what the provider accepts; answered with a 400."""


@dataclass(slots=True)
class Prompt:
    """The texts of one request, directives already stripped."""

    system: list[str] = field(default_factory=list)
    last_user: str = ""
    chars: int = 0
    directives: list[tuple[str, str]] = field(default_factory=list)
    # Where a provider may cache, shortest first (mock_provider/prompt_cache.py).
    prefixes: list[str] = field(default_factory=list)

    def text(self, raw: str) -> str:
        """Strip directives from one text of the request and count it."""
        try:
            clean = strip_directives(raw, self.directives)
        except ControlError as exc:
            raise BadRequest(str(exc)) from None
        self.chars += len(clean)
        return clean


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer to one request, independent of the provider's wire format."""

    id: str
    created: int
    model: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    tool_name: str | None = None  # the answer is a call of this tool...
    arguments: str = ""  # ...with these arguments (JSON text)
    refusal: bool = False
    # Of prompt_tokens: read from the provider's prompt cache, and written to it.
    cached_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def streamed(self) -> str:
        """The text a stream sends in pieces: the arguments of a tool call, else the text."""
        return self.arguments if self.tool_name is not None else self.text

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def estimate_tokens(chars: int) -> int:
    """A cheap deterministic token estimate: about four characters a token, at least one."""
    return max(1, chars // 4)


def join_texts(parts: Any, prompt: Prompt, text_key: str = "text") -> str:
    """Join the texts of a string or a list of content parts (``{"type": "text", "text": ..}``)
    with newlines; other parts (images, tool calls) are ignored."""
    if isinstance(parts, str):
        return prompt.text(parts)
    if parts is None:
        return ""
    if not isinstance(parts, list):
        raise BadRequest("message content must be a string or a list of content parts")
    texts = []
    for part in parts:
        if isinstance(part, dict):
            value = part.get(text_key)
            if isinstance(value, str):
                texts.append(prompt.text(value))
        elif isinstance(part, str):
            texts.append(prompt.text(part))
    return "\n".join(texts)


def compose(
    prompt: Prompt, controls: Controls, config: MockConfig, *, id: str, created: int, model: str
) -> Answer:
    if controls.reply is not None:
        text = controls.reply
    elif controls.echo_system:
        text = "\n".join(prompt.system)
    else:
        text = config.reply_prefix + prompt.last_user.strip()[: config.reply_max_chars]
    prompt_tokens = controls.prompt_tokens
    if prompt_tokens is None:
        prompt_tokens = estimate_tokens(prompt.chars)
    tool_name = controls.tool_call
    arguments = ""
    if tool_name is not None or controls.tool_arguments is not None:
        tool_name = tool_name or DEFAULT_TOOL
        given = controls.tool_arguments
        arguments = orjson.dumps({"text": text}).decode() if given is None else given
        text = ""
    completion_tokens = controls.completion_tokens
    if completion_tokens is None:
        completion_tokens = estimate_tokens(len(text) + len(arguments))
    return Answer(id, created, model, text, prompt_tokens, completion_tokens,
                  tool_name, arguments, controls.refusal)  # fmt: skip


def parsed_arguments(answer: Answer) -> Any:
    """The tool call's arguments as an object, for formats that send one (arguments that
    are not a JSON object are sent as ``{"raw": <text>}``)."""
    try:
        value = orjson.loads(answer.arguments)
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"raw": answer.arguments}


def split_text(text: str, count: int) -> list[str]:
    """Exactly ``count`` consecutive pieces of ``text`` of near-equal length (empty pieces only
    when the text is shorter than ``count``)."""
    size = len(text)
    return [text[i * size // count : (i + 1) * size // count] for i in range(count)]
