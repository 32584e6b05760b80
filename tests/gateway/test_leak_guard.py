# ruff: noqa: RUF001  (look-alike characters are what these tests are about)
"""Property 1: Prompt Security — the output leak guard (gateway/leak_guard/) on its own.

Seed property 1: for any API call to any agent, the response SHALL never contain the
creator's original system prompt text. DESIGN.md ("Prompt secrecy"): a verbatim run of the
prompt in the answer, streamed or not, is cut before it reaches the client, and a stream
holds back only the few bytes this needs. No I/O here: texts, chunkings and SSE bytes.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai._streaming import SSEDecoder
from openai.types.chat import ChatCompletionChunk

from gateway.leak_guard import (
    CANARY_LENGTH,
    LEAK_WORDS,
    SHINGLE_WORDS,
    WITHHELD_FINISH_REASON,
    WITHHELD_NOTICE,
    LeakGuard,
    SseLeakFilter,
    StreamScanner,
    new_canary,
    normalise,
    plant_canary,
    withheld_completion,
    words,
)
from tests.openai_wire import CHUNK_BASE, choice, openai_stream_events, sse_event

PROMPT = (
    "You are a helpful assistant that drafts replies for the customer care desk of Nordlicht "
    "Outdoor GmbH. Always greet the customer by their first name and thank them for choosing "
    "Nordlicht. If a parcel is late, apologise once, offer the tracking link from the order "
    "system and promise a callback within two working days. Never offer refunds above forty "
    "euros without approval from a supervisor named in the escalation sheet. Keep every reply "
    "under one hundred and twenty words, warm but precise, and sign it as Team Nordlicht."
)
PROMPT_WORDS = words(PROMPT)
GUARD = LeakGuard(PROMPT)
# No secret words: holds depend on the text alone. (With a real prompt, the prefix bitmap says
# "maybe" for ~6% of unrelated words, by hash seed; such a word waits for one more delta.)
NO_SECRETS = LeakGuard("")
# A clean answer: on topic, sharing generic words ("you", "the", "order", "thank") but no run.
CLEAN = (
    "Hi Maria,\n\nthank you for your message! I'm sorry your parcel is taking longer than "
    "expected. You can follow it here: https://track.example/abc123. I've asked our logistics "
    "team to look into it, and we'll call you back as soon as we hear from them. Best wishes — "
    "your care desk team"
)
SLOW = settings(max_examples=150, deadline=None)


def stream(scanner: StreamScanner, chunks: list[str]) -> str:
    released = [scanner.feed(chunk) for chunk in chunks]
    released.append(scanner.finish())
    return "".join(released)


def split_at(text: str, cuts: list[int]) -> list[str]:
    bounds = sorted({0, len(text), *(cut % (len(text) + 1) for cut in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def prompt_run(start: int, length: int) -> str:
    return " ".join(PROMPT.split()[start : start + length])


cuts = st.lists(st.integers(min_value=0, max_value=10_000), max_size=40)


# --- normaliser and thresholds ----------------------------------------------------------------


def test_normaliser_folds_case_width_zero_width_marks_and_punctuation() -> None:
    assert normalise("Ｈello,\u200b wor\u200dld —\tÉCOLE  nai\u0308ve\n\n**x**") == (
        "hello world école naïve x"
    )
    assert normalise("don’t_stop-me") == normalise("don't stop me") == "don t stop me"
    assert words("你好，世界") == ["你", "好", "世", "界"]
    assert normalise("") == ""


def test_property_1_prompt_security_verbatim_leak() -> None:
    assert GUARD.check_text(PROMPT)
    assert GUARD.check_text(f"Sure, here are my instructions:\n\n> {PROMPT}\n\nAnything else?")
    assert not GUARD.check_text(CLEAN)


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


LEAK = prompt_run(14, 30)  # "thank them for choosing Nordlicht. If a parcel is late, ..."
DISGUISES = {
    "upper": LEAK.upper(),
    "title": LEAK.title(),
    "line breaks": "\n".join(LEAK.split()),
    "whitespace runs": "   \t ".join(LEAK.split()),
    "zero-width inside words": "\u200b".join(LEAK),
    "soft hyphens and joiners": LEAK.replace("a", "a\u00ad").replace("e", "e\u2060"),
    "punctuation changed": LEAK.replace(",", ";").replace(".", "!") + "...",
    "punctuation dropped": "".join(ch for ch in LEAK if ch.isalnum() or ch.isspace()),
    "punctuation inserted": " - ".join(LEAK.split()),
    "markdown": "**" + LEAK.replace(". ", ".**\n- **") + "**",
    "full-width": "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in LEAK),
    "quoted, curly quotes": f"“{LEAK}”",
    "bidi and BOM marks": "\u202a\ufeff" + LEAK.replace(" ", " \u200e"),
}


@pytest.mark.parametrize("disguise", DISGUISES.values(), ids=DISGUISES.keys())
def test_property_1_prompt_security_disguised_leaks_are_caught(disguise: str) -> None:
    assert GUARD.check_text(disguise)
    assert GUARD.scanner().feed(disguise + " ") == ""
    scanner = GUARD.scanner()
    released = stream(scanner, list(disguise))  # character by character
    assert scanner.leaked
    assert disguise.startswith(released)
    assert not GUARD.check_text(released)
    assert len(words(released)) < SHINGLE_WORDS


def test_decomposed_accents_match_composed_ones() -> None:
    prompt = "Réponds toujours en français soigné, cite la météo de Genève et signe « Hélène »."
    guard = LeakGuard(prompt)
    assert guard.check_text(nfd(prompt).upper())
    assert guard.check_text(unicodedata.normalize("NFC", nfd(prompt)))


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, len(PROMPT.split()) - LEAK_WORDS), extra=st.integers(0, 5))
def test_property_1_prompt_security_partial_quotes_at_threshold(start: int, extra: int) -> None:
    """Property 1: Prompt Security — any run of LEAK_WORDS consecutive prompt words is a
    leak; a run one word shorter, between unrelated words, is not."""
    run = prompt_run(start, LEAK_WORDS + extra)
    if len(run.split()) < LEAK_WORDS:
        return
    assert GUARD.check_text(f"Well, zebra quartz: {run} - zebra quartz.")
    short = prompt_run(start, LEAK_WORDS - 1)
    assert not GUARD.check_text(f"Well, zebra quartz: {short} - zebra quartz.")
    assert stream(GUARD.scanner(), [f"zebra {short} quartz"]) == f"zebra {short} quartz"


@pytest.mark.parametrize(
    ("prompt", "answer"),
    [
        ("You are a helpful assistant that answers questions about " + PROMPT,
         "Sure! I am a helpful assistant."),
        ("You are a helpful assistant. " + PROMPT, "As a helpful assistant, you are a helpful"
         " assistant's best friend: you are a helpful assistant too."),
        ("End with: please let me know if you have any questions. " + PROMPT,
         "Done! Please let me know if you have any questions."),
        ("If in doubt, say that you are not sure and suggest to contact a human. " + PROMPT,
         "I am not sure, so I suggest you contact a human agent."),
        (PROMPT, "Thank you for choosing us! Your parcel is late, sorry; here is the tracking"
         " link, and we will call you within two working days."),
    ],
)  # fmt: skip
def test_common_phrases_and_short_overlaps_do_not_trigger(prompt: str, answer: str) -> None:
    guard = LeakGuard(prompt)
    assert not guard.check_text(answer)
    scanner = guard.scanner(new_canary())
    assert stream(scanner, [answer[i : i + 3] for i in range(0, len(answer), 3)]) == answer


def test_short_prompts_are_matched_whole() -> None:
    guard = LeakGuard("Talk like a pirate at all times.")  # 7 words < SHINGLE_WORDS
    assert guard.check_text("My orders: talk like a PIRATE, at all times!")
    assert not guard.check_text("I talk like a pirate sometimes.")
    assert not guard.check_text("Talk like a pirate at all")
    nine = "Answer only in French, and never use the letter e."  # 8..9 words: all of them
    guard = LeakGuard(nine)
    assert guard.check_text(f"ok: {nine}")
    assert not guard.check_text("Answer only in French, and never use the letter")
    tiny = LeakGuard("Be brief.")  # under MIN_SECRET_UNITS: only the canary guards it
    assert not tiny.check_text("Be brief.")
    canary = new_canary()
    assert tiny.check_text(plant_canary("Be brief.", canary), canary)


def test_cjk_prompts_count_characters() -> None:
    prompt = (
        "你是一名资深的法律顾问，只回答与中国劳动法相关的问题，"
        "回答时必须引用具体条款编号，并在结尾提醒用户咨询执业律师。"
    )
    guard = LeakGuard(prompt)
    chars = [ch for ch in prompt if ch.isalnum()]
    run20 = "".join(chars[5:25])
    run19 = "".join(chars[5:24])
    assert guard.check_text(f"好的：{run20}。")
    assert not guard.check_text(f"好的：{run19}。")
    scanner = guard.scanner()
    assert stream(scanner, list(f"当然可以。{run20}")) == "当然可以。"  # released before the run
    assert scanner.leaked
    assert not guard.check_text("你好，我是一名法律顾问，请问有什么问题？")


def test_knowledge_is_guarded_and_public_texts_are_not() -> None:
    greeting = "Welcome to Nordlicht Outdoor, the home of the warmest sleeping bags in the north!"
    secret_chunk = "Supplier margin table: down jackets are bought at eleven euros and sold at 189."
    guard = LeakGuard(f"{PROMPT} Open with: {greeting}", [secret_chunk], public=[greeting])
    assert not guard.check_text(greeting)
    assert guard.check_text(secret_chunk)
    assert guard.check_text(PROMPT)


def test_property_1_prompt_security_long_prompt_is_indexed_compactly() -> None:
    """Build time is measured in tests/benchmarks (not asserted here: timings in unit tests
    only measure the machine)."""
    vocabulary = [w for w in CLEAN.split() if w.isalpha()] + PROMPT.split()
    prompt = " ".join(f"{vocabulary[i % len(vocabulary)]}{i % 97}" for i in range(5000))
    guard = LeakGuard(prompt)
    assert guard.check_text(" ".join(prompt.split()[1000:1020]))
    assert guard.shingle_count > 5000 - SHINGLE_WORDS
    assert guard.index_bytes < 200_000  # about 24 bytes a word
    middle = " ".join(prompt.split()[2500:2515])
    assert guard.check_text(middle)
    assert not guard.check_text(CLEAN)


# --- canary ------------------------------------------------------------------------------------


def test_canary_shape_and_planting() -> None:
    canaries = {new_canary() for _ in range(100)}
    assert len(canaries) == 100
    for canary in canaries:
        assert len(canary) == CANARY_LENGTH
        assert canary.isalnum()
        assert canary == canary.upper()
    canary = canaries.pop()
    planted = plant_canary(PROMPT, canary)
    assert PROMPT in planted
    assert planted.count(canary) == 2
    assert GUARD.check_text(planted.splitlines()[0], canary)  # the header line alone
    assert not GUARD.check_text(CLEAN, canary)


@pytest.mark.parametrize(
    "spell",
    [
        lambda c: c,
        lambda c: c.lower(),
        " ".join,
        lambda c: "-".join(c.lower()),
        "\u200b".join,
        lambda c: f"`{c[:4]}` `{c[4:8]}` `{c[8:]}`",
        lambda c: "".join(chr(ord(ch) + 0xFEE0) for ch in c),
    ],
)
def test_property_1_prompt_security_canary_in_any_spelling(spell: Any) -> None:
    canary = new_canary()
    text = f"My reference is {spell(canary)}, as you asked."
    assert GUARD.check_text(text, canary)
    for step in (1, 2, 5):
        scanner = GUARD.scanner(canary)
        released = stream(scanner, [text[i : i + step] for i in range(0, len(text), step)])
        assert scanner.leaked
        assert not GUARD.check_text(released, canary)
    assert not GUARD.check_text(text, new_canary())


# --- streaming ---------------------------------------------------------------------------------

LEAKING = f"Of course! Here it is.\n\n{LEAK}\n\nHope that helps."


def test_property_1_prompt_security_leak_split_at_every_position() -> None:
    for at in range(len(LEAKING) + 1):
        for chunks in ([LEAKING[:at], LEAKING[at:]], [*LEAKING[:at], LEAKING[at:]]):
            scanner = GUARD.scanner()
            released = stream(scanner, chunks)
            assert scanner.leaked, at
            assert LEAKING.startswith(released)
            assert not GUARD.check_text(released)


@SLOW
@given(cuts=cuts, disguise=st.sampled_from(sorted(DISGUISES)))
def test_property_1_prompt_security_leak_detected_for_any_chunking(
    cuts: list[int], disguise: str
) -> None:
    """Property 1: Prompt Security — however a leaking answer is split, the scanner sees the
    leak, releases only a prefix that does not leak, and nothing after it."""
    text = f"Of course! Here it is:\n{DISGUISES[disguise]}\nHope that helps."
    scanner = GUARD.scanner()
    released = stream(scanner, split_at(text, cuts))
    assert scanner.leaked
    assert text.startswith(released)
    assert not GUARD.check_text(released)
    assert GUARD.check_text(text)
    with pytest.raises(RuntimeError):
        scanner.feed("more")


# Text that mixes prompt words, unrelated words, separators and awkward Unicode: combining
# marks, zero-width characters, kana with voiced marks, Han, full-width forms, line breaks.
AWKWARD = [
    " ", "  ", "\n", "\r\n", "\t", ",", ".", "—", "’", "\u200b", "\u0301", "\u3099",
    "か", "カ", "ｶﾞ", "中", "文", "。", "，", "Ｘ", "ﬁ", "é", "e\u0301", "ß", "İ",
    "\u2028", "=\u0338", "<", "\U0001f600", "\ufeff", "_",
]  # fmt: skip
_pieces = st.one_of(
    st.sampled_from(PROMPT_WORDS),
    st.sampled_from(CLEAN.split()),
    st.sampled_from(AWKWARD),
    st.text(max_size=3),
)
any_text = st.lists(_pieces, max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=any_text, cuts=cuts)
def test_property_1_prompt_security_verdict_and_release_do_not_depend_on_chunking(
    text: str, cuts: list[int]
) -> None:
    """Property 1: Prompt Security — for any text and any split: the scanner's verdict is
    `check_text`'s; a clean text comes out exactly (nothing lost, reordered or duplicated);
    a leaking one comes out as a clean prefix at most."""
    leaks = GUARD.check_text(text)
    for chunks in (split_at(text, cuts), [text], list(text)):
        scanner = GUARD.scanner()
        released = stream(scanner, chunks)
        assert scanner.leaked == leaks
        if leaks:
            assert text.startswith(released)
            assert not GUARD.check_text(released)
        else:
            assert released == text


@SLOW
@given(text=any_text, cuts=cuts)
def test_clean_text_is_released_exactly_for_any_chunking(text: str, cuts: list[int]) -> None:
    """Property 1: Prompt Security — the guard costs a clean answer nothing: every
    character comes out once, in order, whatever the chunking."""
    guard = LeakGuard("Quokka zeppelin marmalade obsidian turbine lantern violet harbour.")
    if guard.check_text(text):
        return
    scanner = guard.scanner(new_canary())
    assert stream(scanner, split_at(text, cuts)) == text
    assert not scanner.leaked


def test_hold_back_is_the_unfinished_word_for_unrelated_text() -> None:
    scanner = NO_SECRETS.scanner("K7QF3XZP2M4A")  # a word ending in "k" would be held too
    released = ""
    for chunk in ["Quokkas ", "zeppelin", "s hover", " over ma", "rmalade ", "lakes"]:
        released += scanner.feed(chunk)
        assert scanner.held <= len("marmalade"), (released, scanner.held)
    assert released == "Quokkas zeppelins hover over marmalade "
    assert scanner.finish() == "lakes"


@SLOW
@given(start=st.integers(0, len(PROMPT.split()) - LEAK_WORDS), cuts=cuts)
def test_hold_back_never_exceeds_the_window(start: int, cuts: list[int]) -> None:
    """While prompt words stream in below the threshold, at most LEAK_WORDS - 1 finished
    words (plus the unfinished one) are held; they all come out when the run breaks."""
    text = f"zebra {prompt_run(start, LEAK_WORDS - 1)} quartz xylophone yak "
    scanner = GUARD.scanner()
    fed = released = ""
    for chunk in split_at(text, cuts):
        fed += chunk
        released += scanner.feed(chunk)
        held = fed[len(released) :]
        assert len(held.split()) <= LEAK_WORDS, held
    assert released + scanner.finish() == text


def test_prefix_of_canary_is_held_until_it_diverges() -> None:
    canary = "K7QF3XZP2M4A"
    scanner = NO_SECRETS.scanner(canary)
    assert scanner.feed("look k7q ") == "look "
    assert scanner.feed("f3 ") == ""
    assert scanner.feed("nope ") == "k7q f3 nope "
    assert scanner.feed("K7QF3XZP2M4") == ""
    assert scanner.feed("A ") == ""
    assert scanner.leaked


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["k", "K7", "7q", "xk", "qf3x", "f3", "k7qf", "a", "nope"]), max_size=8
    )
)
def test_property_the_canary_prefix_held_is_the_longest_one_at_the_texts_end(
    words: list[str],
) -> None:
    """Property: with no prompt to match, a text ending in a space is released up to the
    words that hold the longest tail of its glued letters that is a proper prefix of the
    canary (from any letter on: a word ending in "k" holds for "K7QF..."), nothing else."""
    canary = "K7QF3XZP2M4A"
    key = canary.lower()
    glued = "".join(words).lower()
    if key in glued:
        return  # a leak: another property
    scanner = NO_SECRETS.scanner(canary)
    text = "".join(word + " " for word in words)
    released = scanner.feed(text)
    longest = max((n for n in range(1, len(key)) if glued.endswith(key[:n])), default=0)
    held_words, covered = 0, 0
    while covered < longest:
        held_words += 1
        covered += len(words[-held_words])
    kept = "".join(word + " " for word in words[len(words) - held_words :]) if held_words else ""
    assert released + kept == text
    assert scanner.finish() == kept


# --- SSE -----------------------------------------------------------------------------------------

BASE = CHUNK_BASE
USAGE = {"prompt_tokens": 412, "completion_tokens": 57, "total_tokens": 469}


def openai_stream(deltas: list[str], *, crlf: bool = False) -> bytes:
    wire = b"".join(openai_stream_events(deltas, USAGE))
    return wire.replace(b"\n", b"\r\n") if crlf else wire


def deltas_of(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def split_bytes(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def relay(sse: SseLeakFilter, pieces: list[bytes]) -> bytes:
    out = [sse.feed(piece) for piece in pieces]
    out.append(sse.finish())
    return b"".join(out)


def sdk_events(wire: bytes, pieces: int = 7) -> Iterator[tuple[str, ChatCompletionChunk | None]]:
    """Parse like the official SDK: its SSE decoder, then ChatCompletionChunk validation."""
    step = max(1, len(wire) // pieces)
    chunks = [wire[i : i + step] for i in range(0, len(wire), step)]
    for event in SSEDecoder().iter_bytes(iter(chunks)):
        if event.data.startswith("[DONE]"):
            yield event.data, None
        else:
            yield event.data, ChatCompletionChunk.model_validate(orjson.loads(event.data))


def content_of(chunks: list[ChatCompletionChunk | None]) -> str:
    return "".join(
        chunk.choices[0].delta.content or "" for chunk in chunks if chunk and chunk.choices
    )


ANSWER = (
    "Hi Maria — thank you for writing! Your parcel (order #4711) left our warehouse on "
    "Tuesday; the carrier’s scan shows it in Köln. 你好！ Ｆull-width, emoji 😀, and a line "
    "separator\u2028here. We'll call you back on Friday."
)


@SLOW
@given(cuts=cuts, size=st.integers(1, 12), crlf=st.booleans())
def test_property_1_prompt_security_sse_clean_stream_for_any_byte_split(
    cuts: list[int], size: int, crlf: bool
) -> None:
    """Property 1: Prompt Security — a clean stream, split anywhere (inside events, inside
    multi-byte UTF-8 characters), comes out as valid SSE the SDK parses, with the same text,
    the finish chunk, the usage chunk and [DONE] at the end."""
    wire = openai_stream(deltas_of(ANSWER, size), crlf=crlf)
    sse = SseLeakFilter(GUARD.scanner(new_canary()))
    out = relay(sse, split_bytes(wire, cuts))
    assert not sse.leaked
    events = list(sdk_events(out))
    chunks = [chunk for _, chunk in events]
    assert content_of(chunks) == ANSWER
    assert events[-1][0] == "[DONE]"
    usage_chunk = chunks[-2]
    assert usage_chunk is not None
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.total_tokens == 469
    finish = chunks[-3]
    assert finish is not None
    assert finish.choices[0].finish_reason == "stop"
    for chunk in chunks[:-1]:
        assert chunk is not None
        assert (chunk.id, chunk.model, chunk.created) == (BASE["id"], BASE["model"], 1735689600)


def test_sse_passthrough_is_byte_for_byte_when_nothing_is_held() -> None:
    # Every delta ends with a space: each one is released whole, so no event is rewritten.
    wire = openai_stream(["Quokkas ", "hover ", "over ", "lakes. "])
    assert relay(SseLeakFilter(NO_SECRETS.scanner()), [wire]) == wire
    assert relay(SseLeakFilter(NO_SECRETS.scanner()), [bytes([b]) for b in wire]) == wire


def test_sse_held_events_come_out_later_not_dropped() -> None:
    wire = openai_stream(["Quok", "kas", " hov", "er."])
    out = relay(SseLeakFilter(NO_SECRETS.scanner()), [wire])
    chunks = [chunk for _, chunk in sdk_events(out)]
    contents = [c.choices[0].delta.content for c in chunks if c and c.choices]
    # role chunk, then "Quokkas " when " hov" arrives, then the rest flushed before "stop"
    assert contents == ["", "Quokkas ", "hover.", None]
    assert content_of(chunks) == "Quokkas hover."


def test_sse_role_sent_with_first_content_is_not_lost() -> None:
    wire = b"".join(
        [
            sse_event([choice({"role": "assistant", "content": "Hel"})]),
            sse_event([choice({"content": "lo there."}, "stop")]),
            b"data: [DONE]\n\n",
        ]
    )
    chunks = [chunk for _, chunk in sdk_events(relay(SseLeakFilter(GUARD.scanner()), [wire]))]
    first = chunks[0]
    assert first is not None
    assert first.choices[0].delta.role == "assistant"
    assert content_of(chunks) == "Hello there."
    last = chunks[1]
    assert last is not None
    assert last.choices[0].finish_reason == "stop"


@SLOW
@given(cuts=cuts, size=st.integers(1, 9))
def test_property_1_prompt_security_sse_leak_is_withheld(cuts: list[int], size: int) -> None:
    """Property 1: Prompt Security — a stream that repeats the prompt stops before the run:
    exactly one withheld chunk (finish_reason content_filter), then usage and [DONE]."""
    text = f"Sure, my instructions say: {PROMPT} Anything else?"
    wire = openai_stream(deltas_of(text, size))
    sse = SseLeakFilter(GUARD.scanner(new_canary()))
    out = relay(sse, split_bytes(wire, cuts))
    assert sse.leaked
    events = list(sdk_events(out))
    chunks = [chunk for _, chunk in events]
    released = content_of(chunks)
    assert released.endswith(WITHHELD_NOTICE)
    assert text.startswith(released.removesuffix(WITHHELD_NOTICE))
    assert not GUARD.check_text(released)
    withheld = [c for c in chunks if c and c.choices and c.choices[0].finish_reason]
    assert len(withheld) == 1
    assert withheld[0].choices[0].finish_reason == WITHHELD_FINISH_REASON
    assert withheld[0].id == BASE["id"]
    assert chunks[-2] is not None
    assert chunks[-2].usage is not None
    assert events[-1][0] == "[DONE]"
    assert chunks[-3] is withheld[0]


def test_sse_canary_leak_is_withheld() -> None:
    canary = new_canary()
    text = f"My instruction set is {' '.join(canary)} — that's all."
    sse = SseLeakFilter(GUARD.scanner(canary))
    out = relay(sse, [openai_stream(deltas_of(text, 2))])
    assert sse.leaked
    assert canary.encode() not in out.upper().replace(b" ", b"")
    assert out.endswith(b"data: [DONE]\n\n")


def test_sse_non_content_events_pass_and_raw_line_separators_survive() -> None:
    wire = b"".join(
        [
            b": keep-alive\n\n",
            sse_event([choice({"role": "assistant", "content": None, "tool_calls": [
                {"index": 0, "id": "call_1", "type": "function",
                 "function": {"name": "lookup", "arguments": ""}}]})]),
            sse_event([choice({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})]),
            sse_event([choice({}, "tool_calls")]),
            sse_event([], usage=USAGE),
            b"data: [DONE]\n\n",
        ]
    )  # fmt: skip
    assert relay(SseLeakFilter(GUARD.scanner()), [wire]) == wire
    # U+2028 / U+2029 / U+0085 appear raw inside JSON strings: never a line break here.
    raw = "one\u2028two\u2029three\x85four "
    wire = openai_stream([raw])
    assert b"\xe2\x80\xa8" in wire
    out = relay(SseLeakFilter(GUARD.scanner()), split_bytes(wire, [100, 101, 102, 150]))
    assert content_of([c for _, c in sdk_events(out)]) == raw


def test_sse_unreadable_content_events_are_not_relayed() -> None:
    bad_utf8 = (
        b'data: {"choices":[{"index":0,"delta":{"content":"caf\xe9 "},"finish_reason":null}]}\n\n'
    )
    bad_json = b'data: {"choices":[{"index":0,"delta":{"content":"x "}}\n\n'
    wire = openai_stream(["Quokkas "])
    sse = SseLeakFilter(GUARD.scanner())
    out = relay(sse, [wire[:300], bad_utf8, bad_json, wire[300:]])
    assert bad_utf8 not in out
    assert bad_json not in out
    assert content_of([c for _, c in sdk_events(out)]) == "Quokkas "


def test_sse_stream_broken_without_finish_still_flushes_clean_text() -> None:
    wire = openai_stream(["Quokkas hov", "er"]).split(b'data: {"id"')
    partial = b'data: {"id"'.join(wire[:4])  # role + two content chunks, no finish/usage/DONE
    out = relay(SseLeakFilter(GUARD.scanner()), [partial])
    assert content_of([c for _, c in sdk_events(out)]) == "Quokkas hover"


# --- non-streaming -------------------------------------------------------------------------------


def completion(content: str) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-abc",
            "object": "chat.completion",
            "created": 1735689600,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    )


def test_property_1_prompt_security_non_streaming_completion_is_withheld() -> None:
    canary = new_canary()
    assert not GUARD.check_completion(completion(CLEAN), canary)
    leaking = completion(f"Here you go: {PROMPT}")
    assert GUARD.check_completion(leaking, canary)
    assert GUARD.check_completion(completion(f"ref {canary.lower()}"), canary)
    assert not GUARD.check_completion(b"not json", canary)
    body = orjson.loads(withheld_completion(leaking))
    assert body["id"] == "chatcmpl-abc"
    assert body["model"] == "gpt-4o-mini"
    assert body["usage"] == USAGE
    assert body["choices"][0]["message"]["content"] == WITHHELD_NOTICE
    assert body["choices"][0]["finish_reason"] == WITHHELD_FINISH_REASON
    assert not GUARD.check_text(orjson.dumps(body).decode())
