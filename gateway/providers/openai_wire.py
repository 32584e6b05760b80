"""The OpenAI chat format as the gateway types it: the request it sends, the answer fields it
reads.

The request (`ChatCompletionRequest`) is a TypedDict: the very dict that is sent, so typing it
costs nothing at run time and the keys it does not name (a message's `name`, a part's
`image_url`) travel through untouched. What a key holds is what `gateway/chat_request.py`
checked: a TypedDict names only what the parser guarantees, and `object` stands where the
developer's value is forwarded unchecked (the adapters that read it look first).

The answer itself is relayed as the provider sent it (OpenAI speaks our format); the msgspec
structs are what is decoded from it, once: a whole `chat.completion` (`ChatAnswer`) and each
stream chunk the tail reader looks into (`ChatChunk`: the same fields). Every other field is
skipped by the decoder, never built. A field of the wrong type makes the answer unreadable.
"""

from __future__ import annotations

from typing import Literal, NotRequired, Required, TypedDict

import msgspec

# -- the request ----------------------------------------------------------------------------

Role = Literal["system", "developer", "user", "assistant", "tool"]


class ContentPart(TypedDict, total=False):
    """One part of a message's content: `type` is text, image_url, input_audio or file; a
    text part's `text` is a string."""

    type: Required[str]
    text: str
    image_url: object  # {"url": ...}, as sent
    # The gateway's mark on an agent's prompt (gateway/chat_request.py with_cache_mark),
    # which the Anthropic adapter carries on the first message only.
    cache_control: dict[str, str]


class ChatMessage(TypedDict, total=False):
    """A message as the parser let it through; the keys it does not name pass untouched."""

    role: Required[Role]
    # A string or a non-empty list of parts; None or absent only for an assistant's message
    # that only calls tools.
    content: str | list[ContentPart] | None
    tool_calls: object  # an assistant's calls, as sent
    tool_call_id: object  # a tool message's answer to one


class StreamOptions(TypedDict):
    include_usage: bool


class ForwardedOptions(TypedDict, total=False):
    """The parameters passed on as the developer sent them (gateway/parameters.py), each of
    the type the parser checked."""

    stop: str | list[str]
    seed: int
    user: str
    response_format: dict[str, object]
    tools: list[dict[str, object]]
    tool_choice: str | dict[str, object]
    parallel_tool_calls: bool
    presence_penalty: float
    frequency_penalty: float
    logit_bias: dict[str, float]


class ChatCompletionRequest(ForwardedOptions):
    """What an adapter is asked: the creator's prompt first in `messages`, the agent's
    model and parameters."""

    model: str
    messages: list[ChatMessage]
    temperature: NotRequired[float]
    top_p: NotRequired[float]
    max_tokens: NotRequired[int]
    stream: NotRequired[bool]
    stream_options: NotRequired[StreamOptions]


# -- the answer -----------------------------------------------------------------------------


class Wire(msgspec.Struct, gc=False):
    """Decoded provider JSON, never part of a reference cycle (so the collector skips it)."""


class PromptTokensDetails(Wire):
    cached_tokens: int | None = None  # read from the provider's prompt cache


class TokenCounts(Wire):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: PromptTokensDetails | None = None


class Choice(Wire):
    finish_reason: str | None = None


class ChatAnswer(Wire):
    """A `chat.completion` body, or one `chat.completion.chunk` of a stream."""

    choices: list[Choice] | None = None
    usage: TokenCounts | None = None  # `null` on the chunks before the last


ChatChunk = ChatAnswer

ANSWER = msgspec.json.Decoder(ChatAnswer)
