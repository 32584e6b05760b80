"""One request's streaming guard over a text field: releases text as soon as it cannot be
part of a leak. See the package docstring ("Streaming")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.leak_guard.canary import canary_key
from gateway.leak_guard.matcher import KEEP_TOKENS, Tracker
from gateway.leak_guard.normaliser import ASCII_ALNUM, ASCII_CUTS, ASCII_WORD, LAST_CUT, words_at

if TYPE_CHECKING:
    from gateway.leak_guard.index import LeakGuard


class StreamScanner:
    """One request's streaming guard: `feed` text deltas, send what it returns; `finish` at
    the end of the answer. The concatenation of everything returned is exactly the input
    when the answer is clean; after a leak it returns "" forever and `leaked` is True."""

    __slots__ = (
        "_base",
        "_buf",
        "_canary",
        "_ctail",
        "_done",
        "_hold",
        "_leaked",
        "_scan",
        "_starts",
        "_tracker",
        "live",
    )

    def __init__(self, guard: LeakGuard, canary: str | None = None) -> None:
        self._tracker = Tracker(guard)
        self._canary = canary_key(canary)
        self._ctail = ""  # the last len(canary) - 1 glued characters
        self._buf = ""  # text received and not released
        self._base = 0  # offset of _buf[0] in the whole text
        self._scan = 0  # _buf[:_scan] has been read into words
        self._starts: list[int] = []  # start offset of each word in _tracker.recent
        self._hold = 0  # trailing words held back
        self._leaked = False
        self._done = False
        self.live = True  # neither leaked nor finished: what the SSE filter's fast path reads

    @property
    def leaked(self) -> bool:
        return self._leaked

    @property
    def finished(self) -> bool:
        return self._done

    @property
    def held(self) -> int:
        """Characters received and not yet released."""
        return len(self._buf)

    def sibling(self) -> StreamScanner:
        """A fresh scanner for another text field of the same answer (same secrets and
        canary): each field a model streams is read on its own."""
        return StreamScanner(self._tracker.guard, self._canary or None)

    def block(self) -> None:
        """Release nothing more: another field of the same answer leaked."""
        self._leak()

    def feed(self, delta: str) -> str:
        if self._done:
            raise RuntimeError("feed() after finish()")
        if self._leaked or not delta:
            return ""
        if delta.isascii():
            cut_end = len(delta.rstrip(ASCII_ALNUM))  # just after its last cut, 0 if none
        else:
            cut = LAST_CUT.match(delta)
            cut_end = cut.end() if cut is not None else 0
        if not cut_end:  # the unfinished word grows; nothing new to decide
            self._buf += delta
            return ""
        buf = self._buf
        frontier = len(buf) + cut_end
        buf += delta
        self._buf = buf
        if not self._read(buf[self._scan : frontier]):
            return ""
        hold = self._hold
        release = frontier if not hold else self._starts[-hold] - self._base
        if release <= 0:
            self._scan = frontier
            return ""
        self._buf = buf[release:]
        self._base += release
        self._scan = frontier - release
        return buf[:release]

    def finish(self) -> str:
        """The rest of the answer, if it is clean (else "")."""
        if self._done:
            return ""
        self._done = True
        self.live = False
        if self._leaked or not self._read(self._buf[self._scan :]):
            self._buf = ""
            return ""
        out, self._buf = self._buf, ""
        return out

    def _read(self, segment: str) -> bool:
        """Read a segment that ends where folding is stable; False on a leak."""
        if not segment:
            return True
        tokens = self._words(segment)
        if not tokens:
            return True
        push = self._tracker.push
        hold = 0
        for token in tokens:
            hold = push(token)
            if hold < 0:
                return self._leak()
        canary = self._canary
        if canary:
            text = self._ctail + (tokens[0] if len(tokens) == 1 else "".join(tokens))
            if canary in text:
                return self._leak()
            keep = len(canary) - 1
            ctail = self._ctail = text[-keep:]
            # A tail of the text that is a proper prefix of the canary holds its first two
            # characters within `ctail`, or is its first one alone at the end: two C-level
            # checks, true for a few words in a hundred (the first character alone is in
            # `ctail` for about a third), before the search with bounds.
            if canary[:2] in ctail or ctail.endswith(canary[0]):
                at = text.find(canary[0], max(0, len(text) - keep))
                hold = max(hold, self._canary_hold(text, at))
        starts = self._starts
        if len(starts) > 2 * KEEP_TOKENS:
            del starts[:-KEEP_TOKENS]
        self._hold = hold
        return True

    def _words(self, segment: str) -> list[str]:
        """The words of a segment that starts at `_base + _scan`; each one's offset goes onto
        `_starts`."""
        starts = self._starts
        start = self._base + self._scan
        if not segment.isascii():
            return words_at(segment, start, starts)
        lowered = segment.lower()
        word = lowered.strip(ASCII_CUTS)
        if word.isalnum():  # the usual delta: one word, which starts where it is found
            starts.append(start + lowered.find(word))
            return [word]
        if not word:
            return []  # separators only
        starts += [start + found.start() for found in ASCII_WORD.finditer(lowered)]
        return ASCII_WORD.findall(word)

    def _canary_hold(self, text: str, at: int) -> int:
        """Words to hold for the longest tail of `text` (from `at` on) that is a proper
        prefix of the canary."""
        canary = self._canary
        chars = 0
        while at >= 0:
            if canary.startswith(text[at:]):
                chars = len(text) - at
                break
            at = text.find(canary[0], at + 1)
        count = 0
        recent = self._tracker.recent
        while chars > 0:
            count += 1
            chars -= len(recent[-count])
        return count

    def _leak(self) -> bool:
        self._leaked = True
        self.live = False
        self._buf = ""
        return False
