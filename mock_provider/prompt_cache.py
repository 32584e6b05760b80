"""The mock's prompt cache: a repeated prompt prefix is reported as cached, as providers do,
for the requests with the `cache` control (`x-mock-cache: 1` or `[[mock cache]]`; the default
is MockConfig.prompt_cache, off).

A request's cacheable prefixes are where its format lets a provider cache (`Prompt.prefixes`,
set by each format's parser, shortest first): after each of OpenAI's leading system/developer
messages and each part of Gemini's `systemInstruction`, which those providers cache on their
own, and after each of Anthropic's system blocks marked `cache_control` (nothing unmarked).
The longest prefix seen before (same model) is read from the cache, the rest up to the
longest prefix is written. How each format reports that is its own: OpenAI
`prompt_tokens_details.cached_tokens`, Anthropic `cache_read_input_tokens` /
`cache_creation_input_tokens`, Gemini `cachedContentTokenCount`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from mock_provider.reply import estimate_tokens


class CacheUse(NamedTuple):
    read_tokens: int  # prompt tokens served from the cache
    write_tokens: int  # prompt tokens written to it by this request


NO_CACHE = CacheUse(0, 0)


class PromptCache:
    """The prefixes seen, newest last; the oldest go beyond `size`."""

    __slots__ = ("_seen", "_size")

    def __init__(self, size: int) -> None:
        self._size = size
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def use(self, model: str, prefixes: list[str], prompt_tokens: int) -> CacheUse:
        if not prefixes:
            return NO_CACHE
        read = ""
        for prefix in prefixes:
            key = (model, prefix)
            if key in self._seen:
                self._seen.move_to_end(key)
                read = prefix
            else:
                self._seen[key] = None
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
        read_tokens = min(estimate_tokens(len(read)), prompt_tokens) if read else 0
        longest = min(estimate_tokens(len(prefixes[-1])), prompt_tokens)
        return CacheUse(read_tokens, longest - read_tokens)

    def clear(self) -> None:
        self._seen.clear()
