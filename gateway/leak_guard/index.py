"""The index of an agent version's secret texts: shingle hashes, the short-secret n-grams
and the prefix bitmap the stream's hold-back reads. See the package docstring."""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any, Final

from gateway.leak_guard.canary import canary_key, new_canary
from gateway.leak_guard.matcher import (
    LEAK_UNITS,
    MIN_SECRET_UNITS,
    SHINGLE_WORDS,
    Tracker,
)
from gateway.leak_guard.normaliser import WORD_UNITS, ngram_hashes, word_units, words
from gateway.leak_guard.openai_completion import completion_leaks, completion_object
from gateway.leak_guard.stream_scanner import StreamScanner

BITS_PER_GRAM: Final = 16  # the prefix bitmap: ~6% false "could be a prompt run" answers


class LeakGuard:
    """The index of an agent version's secret texts. Build once, share across requests
    (immutable, thread-safe); per request, use `check_text` or a `scanner`."""

    __slots__ = ("_bits", "_nbits", "_needs", "_shingles", "_short", "_short_sizes")

    canary = staticmethod(new_canary)  # LeakGuard.canary(): a fresh per-request canary

    def __init__(
        self,
        system_prompt: str,
        knowledge: Iterable[str] = (),
        *,
        public: Iterable[str] = (),
    ) -> None:
        grams: set[int] = set()
        needs: dict[int, int] = {}
        short: dict[int, set[int]] = {}
        for text in (system_prompt, *knowledge):
            tokens = words(text)
            units = sum(map(word_units, tokens)) if not text.isascii() else WORD_UNITS * len(tokens)
            if units < MIN_SECRET_UNITS:
                continue
            for size in range(1, min(SHINGLE_WORDS, len(tokens)) + 1):
                grams.update(ngram_hashes(tokens, size))
            if len(tokens) < SHINGLE_WORDS:
                short.setdefault(len(tokens), set()).add(hash(tuple(tokens)))
                continue
            need = min(LEAK_UNITS, units)
            for shingle in ngram_hashes(tokens, SHINGLE_WORDS):
                if needs.get(shingle, LEAK_UNITS) >= need:
                    needs[shingle] = need
        for text in public:
            tokens = words(text)
            for shingle in ngram_hashes(tokens, SHINGLE_WORDS):
                needs.pop(shingle, None)
            if tokens and len(tokens) < SHINGLE_WORDS:
                short.get(len(tokens), set()).discard(hash(tuple(tokens)))
        nbits = max(64, -(-BITS_PER_GRAM * len(grams) // 8) * 8)
        bits = bytearray(nbits // 8)
        for gram in grams:
            bit = gram % nbits
            bits[bit >> 3] |= 1 << (bit & 7)
        self._bits = bytes(bits)
        self._nbits = nbits
        self._shingles = array("q", sorted(needs))
        self._needs = {shingle: need for shingle, need in needs.items() if need < LEAK_UNITS}
        self._short = {size: frozenset(hashes) for size, hashes in short.items() if hashes}
        self._short_sizes = tuple(sorted(self._short))

    @property
    def shingle_count(self) -> int:
        return len(self._shingles)

    @property
    def index_bytes(self) -> int:
        """The index's own size (bitmap and shingle array), for capacity planning."""
        return len(self._bits) + self._shingles.itemsize * len(self._shingles)

    def _need(self, gram: int) -> int:
        """The units a run through this shingle must cover, or 0 if it is not a shingle."""
        shingles = self._shingles
        at = bisect_left(shingles, gram)
        if at < len(shingles) and shingles[at] == gram:
            return self._needs.get(gram, LEAK_UNITS)
        return 0

    def _may_hit(self, tokens: list[str]) -> bool:
        bits, nbits = self._bits, self._nbits
        for gram in ngram_hashes(tokens, SHINGLE_WORDS):
            bit = gram % nbits
            if bits[bit >> 3] >> (bit & 7) & 1 and self._need(gram):
                return True
        return any(
            not self._short[size].isdisjoint(ngram_hashes(tokens, size))
            for size in self._short_sizes
        )

    def check_text(self, text: str, canary: str | None = None) -> bool:
        """True when the text leaks a secret (or contains the request's canary)."""
        tokens = words(text)
        key = canary_key(canary)
        if key and key in "".join(tokens):
            return True
        if not self._may_hit(tokens):
            return False
        tracker = Tracker(self)
        return any(tracker.push(token) < 0 for token in tokens)

    def check_completion(self, body: bytes, canary: str | None = None) -> bool:
        """True when a non-streaming chat.completion body leaks in any text of any choice
        (`openai_completion.message_texts`)."""
        return completion_leaks(self, completion_object(body), canary)

    def check_answer(self, data: dict[str, Any] | None, canary: str | None = None) -> bool:
        """`check_completion` on the body's JSON object, already parsed
        (`openai_completion.completion_object`)."""
        return completion_leaks(self, data, canary)

    def scanner(self, canary: str | None = None) -> StreamScanner:
        return StreamScanner(self, canary)
