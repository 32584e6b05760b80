"""The word-by-word matcher and the thresholds it applies: what counts as a leak.
See the package docstring ("Shingles and the threshold")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from gateway.leak_guard.normaliser import WORD_UNITS, word_units

if TYPE_CHECKING:
    from gateway.leak_guard.index import LeakGuard

SHINGLE_WORDS: Final = 8
LEAK_WORDS: Final = 10
LEAK_UNITS: Final = LEAK_WORDS * WORD_UNITS
MIN_SECRET_UNITS: Final = 3 * WORD_UNITS
KEEP_TOKENS: Final = 32  # words a scanner remembers; a hold never needs more than 19


class Tracker:
    """The word-by-word matcher shared by `check_text` and the stream scanner.

    `match` is the length of the longest tail of words that begins some secret's n-gram
    (read from a bitmap of all 1..8-grams, so it may overshoot, never undershoot: the tail
    of a real prompt run is always seen). A run is a sequence of consecutive shingle hits.
    """

    __slots__ = (
        "_bits",
        "_nbits",
        "guard",
        "index",
        "last_hit",
        "match",
        "recent",
        "run_first",
        "run_need",
    )

    def __init__(self, guard: LeakGuard) -> None:
        self.guard = guard
        self._bits = guard._bits
        self._nbits = guard._nbits
        self.recent: list[str] = []
        self.match = 0  # at most SHINGLE_WORDS - 1
        self.index = -1
        self.last_hit = -2
        self.run_first = 0
        self.run_need = 0

    def push(self, token: str) -> int:
        """Take the next word: -1 on a leak, else how many trailing words must be held."""
        recent = self.recent
        recent.append(token)
        if len(recent) > 2 * KEEP_TOKENS:
            del recent[:-KEEP_TOKENS]
        self.index += 1
        bits, nbits = self._bits, self._nbits
        size = self.match + 1
        match = hit = 0
        while size:
            gram = hash(tuple(recent[-size:])) if size > 1 else hash((token,))
            bit = gram % nbits
            if bits[bit >> 3] >> (bit & 7) & 1:
                if size == SHINGLE_WORDS:
                    hit = self.guard._need(gram)
                    match = SHINGLE_WORDS - 1
                else:
                    match = size
                break
            size -= 1
        self.match = match
        if match and self.guard._short_sizes:
            guard = self.guard
            for size in guard._short_sizes:
                if size <= match and hash(tuple(recent[-size:])) in guard._short[size]:
                    return -1
        if not hit:
            return match
        if self.last_hit == self.index - 1:
            self.run_need = min(self.run_need, hit)
        else:
            self.run_first, self.run_need = self.index, hit
        self.last_hit = self.index
        span = self.index - self.run_first + SHINGLE_WORDS
        if sum(map(word_units, recent[-span:])) >= self.run_need:
            return -1
        return span
