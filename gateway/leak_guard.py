"""The output leak guard: the creator's hidden prompt must not come back out in the answer.

DESIGN.md, "Prompt secrecy": beyond never sending the prompt to the developer, the gateway
guards the model's output. A verbatim (or near-verbatim) run of the system prompt in the
answer, streamed or not, is cut before it reaches the client, and a stream holds back only
the few bytes this needs. Everything here is pure (no I/O) and synchronous.

Use, per (agent, version) and per request::

    guard = LeakGuard(config.system_prompt)          # once, cached with the agent config
    canary = new_canary()                            # per request
    system = plant_canary(config.system_prompt, canary)   # the text sent upstream
    # non-streaming
    if guard.check_completion(body, canary):
        body = withheld_completion(body)
    # streaming (OpenAI SSE bytes)
    sse = SseLeakFilter(guard.scanner(canary))
    for raw in provider_bytes: send(sse.feed(raw))
    send(sse.finish())

An agent whose config opts out (`leak_guard` false) simply builds none of this: no guard,
no canary, no filter, the stream stays a byte-for-byte passthrough.

Normaliser (the same on both sides, prompt and answer)
    NFKC (full-width letters, ligatures, compatibility forms fold to plain ones), casefold,
    then every format character (Unicode category Cf: zero-width spaces and joiners, soft
    hyphens, bidi marks, BOM, tag characters) and combining mark (Mn, Mc, Me) is deleted,
    so "se<U+200B>cret", "<full-width SECRET>" and "Secret" are one word. The text is then read as
    words: a word is a run of letters and digits; every other character (whitespace of any
    kind, line breaks, all punctuation, symbols, Markdown, underscores) only separates words,
    so whitespace runs collapse and punctuation a model inserts, drops or changes does not
    matter. Han ideographs and kana are one word per character (those scripts have no spaces).
    `normalise(text)` shows the result: the words joined by single spaces.

Shingles and the threshold
    Every run of SHINGLE_WORDS = 8 consecutive words of a secret text is a shingle, kept as
    Python's hash of the word tuple (process-local, randomised per process) in a sorted
    array. A leak is a run of consecutive shingle hits in the answer covering at least
    LEAK_UNITS = 20 units, a word counting 2 units and a Han/kana character 1: that is 10
    consecutive prompt words (three overlapping shingles), or 20 consecutive characters of a
    Chinese/Japanese prompt. Nine words never trigger it, so "you are a helpful assistant"
    (5 words), "please let me know if you have any questions" (9) and other stock phrases
    pass even where the prompt contains them verbatim. Short secrets are guarded whole: one
    of fewer than 10 words (20 units) leaks only when all of it appears, and one of fewer
    than 8 words is matched as a single n-gram of its own length; under MIN_SECRET_UNITS (3
    words) a text is not matched at all, only the canary guards it. `public` texts (a
    greeting or disclaimer the prompt tells the model to say word for word) are taken out of
    the index, else an agent that obeys its prompt would have those answers withheld.
    Beside the shingles, a bitmap (16 bits per distinct 1..8-gram) answers "could the last
    k words be the start of a prompt run?" for the stream's hold-back; it may say yes
    wrongly (about 6% of unrelated words, which then wait one more delta), never no wrongly.
    Memory: about 21 bytes per prompt word (7 KB for a 2 KB prompt), nothing per request
    beyond a scanner's few dozen words.

Canary
    `new_canary()` is 12 random base32 characters (60 bits) per request. `plant_canary`
    frames the prompt with it as an instruction-set reference, at the top and at the end, so
    a model that repeats its instructions repeats the canary too. The answer is compared with
    its words glued together (everything but letters and digits removed, casefolded), so the
    canary is found in any case, split by spaces, dashes or zero-width characters. The canary
    is a certain leak: a random 60-bit string does not occur by chance.

Streaming
    `StreamScanner.feed` releases text as soon as it cannot be part of a leak, and holds
    back: (a) the unfinished last word (until a space, punctuation or a Han character ends
    it); (b) the longest tail of words that is the start of some prompt shingle (at most 7
    words; usually 0-2 ordinary words); (c) while a run of shingle hits is open, the whole
    run (at most 9 words / 19 CJK characters; the next hit makes it a leak); (d) the longest
    tail that is a prefix of the canary (usually nothing). The decision depends only on the
    text, never on where the chunks were split: the text is folded in segments that end at a
    whitespace, ASCII punctuation or Han character, where NFKC cannot join a character to
    the next one. Once a leak is seen the scanner releases nothing more, ever.

Costs (tests/benchmarks/test_leak_guard_benchmark.py, one core): building the guard for a
2 KB prompt ~0.5 ms (5,000 words ~15 ms); `check_text` on a 2 KB answer ~90 us; a 20-chunk
SSE stream through `SseLeakFilter`, per-request setup included, ~100 us (about 4 us per
content event) against ~0.5 us for the plain passthrough.
"""

from __future__ import annotations

import base64
import re
import secrets
import unicodedata
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any, Final

import orjson

SHINGLE_WORDS: Final = 8
WORD_UNITS: Final = 2  # a word of a spaced script
CJK_UNITS: Final = 1  # one Han ideograph or kana
LEAK_WORDS: Final = 10
LEAK_UNITS: Final = LEAK_WORDS * WORD_UNITS
MIN_SECRET_UNITS: Final = 3 * WORD_UNITS
CANARY_LENGTH: Final = 12
WITHHELD_NOTICE: Final = "[response withheld: it repeated the agent's confidential instructions]"
WITHHELD_FINISH_REASON: Final = "content_filter"

_N = SHINGLE_WORDS
_BITS_PER_GRAM = 16  # the prefix bitmap: ~6% false "could be a prompt run" answers
_KEEP_TOKENS = 32  # words a scanner remembers; a hold never needs more than 19


def _deletable_class() -> str:
    """A regex class of the format characters and combining marks to delete after NFKC.
    The BMP is scanned (about 10 ms, once at import); beyond it only the tag characters and
    the variation selector supplement matter for text a model writes."""
    ranges: list[tuple[int, int]] = []
    deletable = {"Cf", "Mn", "Mc", "Me"}
    category = unicodedata.category
    start = -1
    for code in range(0x80, 0x10000):
        if category(chr(code)) in deletable:
            if start < 0:
                start = code
        elif start >= 0:
            ranges.append((start, code - 1))
            start = -1
    ranges += [(0xE0000, 0xE007F), (0xE0100, 0xE01EF), (0x1D173, 0x1D17A)]
    return "".join(
        f"\\U{low:08x}" if low == high else f"\\U{low:08x}-\\U{high:08x}" for low, high in ranges
    )


_CJK = (
    r"\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff"  # kana
    r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"  # Han
)
# Characters a segment may end with: whitespace, ASCII punctuation and controls, Han, CJK and
# full-width punctuation. None of them is ever joined by NFKC with the character after it in
# a way that changes the words (the only ASCII case, "<", "=" or ">" + U+0338, makes another
# separator), so folding text cut after one of them equals folding it whole. Kana are not
# here: a kana can take a following (semi-)voiced sound mark.
_CUT = (
    r"\s\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f\u3000-\u3003\u3008-\u3011"
    r"\u3400-\u4dbf\u4e00-\u9fff\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff5e"
)
_DELETE = re.compile(f"[{_deletable_class()}]+")
_WORD = re.compile(f"[{_CJK}]|[^\\W_{_CJK}]+")
_ASCII_WORD = re.compile(r"[a-z0-9]+")
_CJK_CHAR = re.compile(f"[{_CJK}]")
_LAST_CUT = re.compile(f"(?s:.*)[{_CUT}]")
_PIECE = re.compile(f"[^{_CUT}]*[{_CUT}]|[^{_CUT}]+")


def _fold(text: str) -> str:
    if text.isascii():
        return text.lower()
    return _DELETE.sub("", unicodedata.normalize("NFKC", text).casefold())


def words(text: str) -> list[str]:
    """The normalised words of a text (see the module docstring)."""
    if text.isascii():
        return _ASCII_WORD.findall(text.lower())
    return _WORD.findall(_fold(text))


def normalise(text: str) -> str:
    """The normal form the guard compares: NFKC, casefolded, zero-width characters and
    combining marks dropped, punctuation and whitespace runs collapsed to one space."""
    return " ".join(words(text))


def _units(word: str) -> int:
    return CJK_UNITS if _CJK_CHAR.match(word) else WORD_UNITS


def _grams(tokens: list[str], size: int) -> Iterable[int]:
    return map(hash, zip(*[tokens[offset:] for offset in range(size)], strict=False))


def new_canary() -> str:
    """A fresh per-request canary: 12 base32 characters (60 random bits)."""
    return base64.b32encode(secrets.token_bytes(8)).decode("ascii")[:CANARY_LENGTH]


def plant_canary(system_prompt: str, canary: str) -> str:
    """The system prompt to send upstream, framed by the canary as if it were part of it."""
    return f"[Instruction set {canary}]\n{system_prompt}\n[End of instruction set {canary}]"


def _canary_key(canary: str | None) -> str:
    return "".join(words(canary)) if canary else ""


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
            units = sum(map(_units, tokens)) if not text.isascii() else WORD_UNITS * len(tokens)
            if units < MIN_SECRET_UNITS:
                continue
            for size in range(1, min(_N, len(tokens)) + 1):
                grams.update(_grams(tokens, size))
            if len(tokens) < _N:
                short.setdefault(len(tokens), set()).add(hash(tuple(tokens)))
                continue
            need = min(LEAK_UNITS, units)
            for shingle in _grams(tokens, _N):
                if needs.get(shingle, LEAK_UNITS) >= need:
                    needs[shingle] = need
        for text in public:
            tokens = words(text)
            for shingle in _grams(tokens, _N):
                needs.pop(shingle, None)
            if tokens and len(tokens) < _N:
                short.get(len(tokens), set()).discard(hash(tuple(tokens)))
        nbits = max(64, -(-_BITS_PER_GRAM * len(grams) // 8) * 8)
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
        for gram in _grams(tokens, _N):
            bit = gram % nbits
            if bits[bit >> 3] >> (bit & 7) & 1 and self._need(gram):
                return True
        return any(
            not self._short[size].isdisjoint(_grams(tokens, size)) for size in self._short_sizes
        )

    def check_text(self, text: str, canary: str | None = None) -> bool:
        """True when the text leaks a secret (or contains the request's canary)."""
        tokens = words(text)
        key = _canary_key(canary)
        if key and key in "".join(tokens):
            return True
        if not self._may_hit(tokens):
            return False
        tracker = _Tracker(self)
        return any(tracker.push(token) < 0 for token in tokens)

    def check_completion(self, body: bytes, canary: str | None = None) -> bool:
        """True when a non-streaming chat.completion body leaks in any choice's content."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return False  # not an answer the client can read either
        choices = data.get("choices") if isinstance(data, dict) else None
        for choice in choices if isinstance(choices, list) else ():
            message = choice.get("message") if isinstance(choice, dict) else None
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str) and self.check_text(content, canary):
                return True
        return False

    def scanner(self, canary: str | None = None) -> StreamScanner:
        return StreamScanner(self, canary)


class _Tracker:
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
        self.match = 0  # at most _N - 1
        self.index = -1
        self.last_hit = -2
        self.run_first = 0
        self.run_need = 0

    def push(self, token: str) -> int:
        """Take the next word: -1 on a leak, else how many trailing words must be held."""
        recent = self.recent
        recent.append(token)
        if len(recent) > 2 * _KEEP_TOKENS:
            del recent[:-_KEEP_TOKENS]
        self.index += 1
        bits, nbits = self._bits, self._nbits
        size = self.match + 1
        match = hit = 0
        while size:
            gram = hash(tuple(recent[-size:])) if size > 1 else hash((token,))
            bit = gram % nbits
            if bits[bit >> 3] >> (bit & 7) & 1:
                if size == _N:
                    hit = self.guard._need(gram)
                    match = _N - 1
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
        span = self.index - self.run_first + _N
        if sum(map(_units, recent[-span:])) >= self.run_need:
            return -1
        return span


def _words_at(segment: str, start: int, starts: list[int]) -> list[str]:
    """The words of a segment; appends each word's offset (`start` + its position in the
    segment) to `starts`. Outside ASCII a word's offset is that of its piece (the text after
    the previous cut character), which is at or before the word: never too late."""
    tokens: list[str] = []
    if segment.isascii():
        for found in _ASCII_WORD.finditer(segment.lower()):
            tokens.append(found.group())
            starts.append(start + found.start())
        return tokens
    for piece in _PIECE.finditer(segment):
        text = piece.group()
        if text.isascii():
            for found in _ASCII_WORD.finditer(text.lower()):
                tokens.append(found.group())
                starts.append(start + piece.start() + found.start())
        else:
            found_words = _WORD.findall(_fold(text))
            tokens += found_words
            starts += [start + piece.start()] * len(found_words)
    return tokens


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
    )

    def __init__(self, guard: LeakGuard, canary: str | None = None) -> None:
        self._tracker = _Tracker(guard)
        self._canary = _canary_key(canary)
        self._ctail = ""  # the last len(canary) - 1 glued characters
        self._buf = ""  # text received and not released
        self._base = 0  # offset of _buf[0] in the whole text
        self._scan = 0  # _buf[:_scan] has been read into words
        self._starts: list[int] = []  # start offset of each word in _tracker.recent
        self._hold = 0  # trailing words held back
        self._leaked = False
        self._done = False

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

    def feed(self, delta: str) -> str:
        if self._done:
            raise RuntimeError("feed() after finish()")
        if self._leaked or not delta:
            return ""
        cut = _LAST_CUT.match(delta)
        if cut is None:  # the unfinished word grows; nothing new to decide
            self._buf += delta
            return ""
        buf = self._buf
        frontier = len(buf) + cut.end()
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
        if self._leaked or not self._read(self._buf[self._scan :]):
            self._buf = ""
            return ""
        out, self._buf = self._buf, ""
        return out

    def _read(self, segment: str) -> bool:
        """Read a segment that ends where folding is stable; False on a leak."""
        if not segment:
            return True
        starts = self._starts
        start = self._base + self._scan
        if segment.isascii():
            tokens: list[str] = []
            for found in _ASCII_WORD.finditer(segment.lower()):
                tokens.append(found.group())
                starts.append(start + found.start())
        else:
            tokens = _words_at(segment, start, starts)
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
            text = self._ctail + "".join(tokens)
            if canary in text:
                return self._leak()
            keep = len(canary) - 1
            self._ctail = text[-keep:]
            at = text.find(canary[0], max(0, len(text) - keep))
            if at >= 0:
                hold = max(hold, self._canary_hold(text, at))
        if len(starts) > 2 * _KEEP_TOKENS:
            del starts[:-_KEEP_TOKENS]
        self._hold = hold
        return True

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
        self._buf = ""
        return False


# --- OpenAI wire formats -------------------------------------------------------------------


_CONTENT_DELTA = b'"delta":{"content":"'


def _event_data(raw: bytes) -> bytes | None:
    """The data of one SSE event (data lines joined by LF), or None if it has none."""
    if raw.startswith(b"data: ") and raw.find(b"\n") == len(raw) - 2:
        return raw[6:-2]  # the usual "data: ...\n\n"
    data: list[bytes] = []
    for line in raw.split(b"\n"):
        line = line.removesuffix(b"\r")  # noqa: PLW2901
        if line.startswith(b"data:"):
            data.append(line[6:] if line.startswith(b"data: ") else line[5:])
    return b"\n".join(data) if data else None


def _json_object(data: bytes) -> dict[str, Any] | None:
    if not data.startswith(b"{"):
        return None
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _content_chunk(
    shape: bytes, content: str, finish_reason: str | None, *, keep_usage: bool
) -> bytes:
    """A chat.completion.chunk shaped like `shape` (same id, model, created, ...)."""
    obj = _json_object(shape) or {"object": "chat.completion.chunk"}
    choices = obj.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else {}
    index = first.get("index", 0) if isinstance(first, dict) else 0
    obj["choices"] = [
        {
            "index": index,
            "delta": {"content": content},
            "logprobs": None,
            "finish_reason": finish_reason,
        }
    ]
    if not keep_usage and obj.get("usage") is not None:
        obj["usage"] = None
    return _sse(obj)


class SseLeakFilter:
    """The stream scanner applied to a relayed OpenAI chat.completion.chunk SSE stream.

    Events are cut on blank lines (LF or CRLF), never on other line breaks (U+2028 and the
    like travel raw inside JSON strings). Events without content (role, tool calls, usage,
    comments, [DONE]) pass through byte for byte, as do content events whose text the
    scanner releases unchanged. Otherwise a content event is re-emitted with the released
    text and every other byte of it kept (id, model, created, ...); one whose released text
    is empty is held back, its text following in a later event. At the end of the answer (a
    finish_reason, the usage chunk, [DONE] or `finish`) the rest is released first.

    On a leak no more content goes out: exactly one chunk says the answer was withheld,
    with finish_reason "content_filter"; later the usage chunk (choices == []), comments and
    [DONE] still pass, every other event is dropped.
    """

    __slots__ = ("_buf", "_line", "_notice", "_scanner", "_shape", "_withheld")

    def __init__(self, scanner: StreamScanner, *, notice: str = WITHHELD_NOTICE) -> None:
        self._scanner = scanner
        self._notice = notice
        self._buf = b""
        self._line = 0  # where the next line starts in _buf (earlier lines are complete)
        self._shape = b""  # the JSON of the last content chunk, to shape chunks we write
        self._withheld = False

    @property
    def leaked(self) -> bool:
        return self._scanner.leaked

    def feed(self, data: bytes) -> bytes:
        buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        start = 0  # the current event
        line = self._line  # the next line of it
        while True:
            end = buf.find(b"\n", line)
            if end < 0:
                break
            if end == line or (end == line + 1 and buf[line] == 13):  # a blank line: LF, CRLF
                if line > start:
                    self._event(buf[start : end + 1], out)
                else:
                    out.append(buf[start : end + 1])  # a blank line between events
                start = end + 1
            line = end + 1
        self._buf = buf[start:]
        self._line = line - start
        return b"".join(out)

    def finish(self) -> bytes:
        """At the end of the byte stream: a last event without its blank line, and the
        held text if the answer never said it was finished."""
        out: list[bytes] = []
        if self._buf.strip():
            self._event(self._buf, out)
        self._buf = b""
        self._line = 0
        self._end_of_answer(None, out)
        return b"".join(out)

    def _event(self, raw: bytes, out: list[bytes]) -> None:
        scanner = self._scanner
        data = _event_data(raw)
        if data is None:
            out.append(raw)  # a comment or keep-alive
            return
        at = data.find(_CONTENT_DELTA)
        if at >= 0 and self._plain_content(raw, data, at + len(_CONTENT_DELTA), out):
            return
        if not scanner.held and not scanner.leaked and b'"content"' not in data:
            out.append(raw)  # nothing held, nothing to read
            return
        if data == b"[DONE]":
            self._end_of_answer(None, out)
            out.append(raw)
            return
        obj = _json_object(data)
        if obj is None and b'"content"' in data:
            return  # text the filter cannot read (broken JSON or UTF-8): never unvetted
        choices = obj.get("choices") if obj is not None else None
        if obj is not None and isinstance(choices, list) and choices:
            if isinstance(choices[0], dict):
                self._choice(raw, data, obj, choices[0], out)
            elif not scanner.leaked:
                out.append(raw)
            return
        if obj is not None and obj.get("usage"):
            self._end_of_answer(None, out)  # the usage chunk closes the answer
        out.append(raw)

    def _plain_content(self, raw: bytes, data: bytes, start: int, out: list[bytes]) -> bool:
        """The fast path for the common content chunk, `"delta":{"content":"..."}` with no
        escapes and no finish_reason: read and rewrite the string in place, no JSON parse.
        False when the chunk is not that simple (the general path takes it)."""
        end = data.find(b'"', start)
        scanner = self._scanner
        if (
            end < 0
            or data[end + 1 : end + 2] != b"}"
            or data.find(b"\\", start, end) >= 0
            or data.find(b'"finish_reason":null', end) < 0
            or scanner.leaked
            or scanner.finished
        ):
            return False
        try:
            content = data[start:end].decode()
        except UnicodeDecodeError:
            return False
        if not content:
            return False
        self._shape = data
        released = scanner.feed(content)
        if scanner.leaked:
            self._withhold(data, out)
        elif released == content:
            out.append(raw)
        elif released:
            out.append(b"data: " + data[: start - 1] + orjson.dumps(released) + data[end + 1 :])
            out.append(b"\n\n")
        return True

    def _choice(
        self,
        raw: bytes,
        data: bytes,
        obj: dict[str, Any],
        choice: dict[str, Any],
        out: list[bytes],
    ) -> None:
        scanner = self._scanner
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
        finish_reason = choice.get("finish_reason")
        if not isinstance(content, str) or not content or not isinstance(delta, dict):
            if finish_reason is not None and not scanner.leaked:
                self._end_of_answer(data, out)  # the withheld chunk takes its place on a leak
            if not scanner.leaked:
                out.append(raw)
            return
        if scanner.leaked or scanner.finished:
            return  # no content after a leak, or after the answer ended
        self._shape = data
        released = scanner.feed(content)
        if finish_reason is not None:
            released += scanner.finish()
        if scanner.leaked:
            self._withhold(data, out)
        elif released == content:
            out.append(raw)
        elif (
            released
            or finish_reason is not None
            or any(value is not None for key, value in delta.items() if key != "content")
        ):
            delta["content"] = released
            out.append(_sse(obj))
        # else: held; its text goes out with a later event

    def _end_of_answer(self, closing: bytes | None, out: list[bytes]) -> None:
        """The answer is over: release the rest, or withhold it (in place of `closing`,
        the chunk that ended it, when there is one)."""
        scanner = self._scanner
        rest = scanner.finish()
        if scanner.leaked:
            self._withhold(closing or self._shape, out)
        elif rest:
            out.append(_content_chunk(self._shape, rest, None, keep_usage=False))

    def _withhold(self, shape: bytes, out: list[bytes]) -> None:
        if self._withheld:
            return
        self._withheld = True
        out.append(_content_chunk(shape, self._notice, WITHHELD_FINISH_REASON, keep_usage=True))


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
