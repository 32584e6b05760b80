"""The output leak guard: the creator's hidden prompt must not come back out in the answer.

DESIGN.md, "Prompt secrecy": beyond never sending the prompt to the developer, the gateway
guards the model's output. A verbatim (or near-verbatim) run of the system prompt in the
answer, streamed or not, is cut before it reaches the client, and a stream holds back only
the few bytes this needs. Everything here is pure (no I/O) and synchronous.

Use, per (agent, version) and per request::

    guard = LeakGuard(config.system_prompt)          # once, cached with the agent config
    canary = version_canary(secret)                  # once per version (gateway/agent_configs.py)
    system = plant_canary(config.system_prompt, canary)   # the text sent upstream, once too
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
    12 base32 characters (60 bits), one per agent version: `version_canary` of the key
    ring's secret for (agent id, version) (crypto/envelope.py `KeyRing.version_secret`), the
    same on every gateway process and across restarts, different for every version, and
    unguessable without the encryption key. `plant_canary` frames the prompt with it as an
    instruction-set reference, at the top and at the end, so a model that repeats its
    instructions repeats the canary too. The answer is compared with its words glued together
    (everything but letters and digits removed, casefolded), so the canary is found in any
    case, split by spaces, dashes or zero-width characters. It is a certain leak: 60 bits do
    not occur by chance.

    Why per version, not per call: a fresh canary on every call made every upstream prompt
    unique from its first line, so no provider prefix cache (OpenAI's automatic one,
    Anthropic's `cache_control`, Gemini's implicit one) could ever hit. A stable one detects
    everything a per-call one did: (1) every answer is checked against the canary of the
    version it was asked of, and a canary seen on another call of that version is that
    canary, so replaying it is caught the same way; (2) it is as secret as the prompt it
    frames: it is sent only to the provider, never in a response, log, trace or metric, and
    the only way to learn it is to have the model print it in a form the guard does not read
    (reversed, encoded), which gets the prompt itself out the same way, so knowing it gives
    nothing the prompt would not; (3) knowing it does not help to hide a leak: the shingle
    match does not depend on it. Any config change makes a new version, hence a new canary
    (a creator retires one by saving the agent). `new_canary()` (random) is for tests.

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

Fields
    Every text a model can emit is guarded, not only `content`: `refusal`, the reasoning
    fields of OpenAI-compatible servers, each tool call's `function.arguments` and the
    legacy `function_call.arguments` (Anthropic's `tool_use` input and `input_json_delta`
    and Gemini's `functionCall.args` arrive as these once the adapters translated them).
    Each field is its own text with its own scanner; a leak in any one withholds the whole
    answer. Arguments are JSON text, read with their escapes decoded (`\\n`, `\\"`,
    `\\uXXXX`; `json_text`), and released as the raw bytes the model wrote. A tool call's
    held arguments go out at the latest when the next call starts.

Costs (tests/benchmarks/test_leak_guard_benchmark.py, one core): building the guard for a
2 KB prompt ~0.5 ms (5,000 words ~15 ms); `check_text` on a 2 KB answer ~90 us; a 20-chunk
SSE stream through `SseLeakFilter`, per-request setup included, ~100 us (about 4 us per
content event) against ~0.5 us for the plain passthrough.

Modules
    `normaliser` (words), `canary`, `matcher` (the word-by-word matcher and the thresholds),
    `index` (`LeakGuard`), `stream_scanner` (`StreamScanner`), `openai_completion` (a
    non-streaming body and its withheld replacement), `json_text` (arguments' escapes),
    `openai_delta` (a stream's text fields, one scanner each), `openai_sse`
    (`SseLeakFilter`).
"""

from gateway.leak_guard.canary import CANARY_LENGTH, new_canary, plant_canary, version_canary
from gateway.leak_guard.index import LeakGuard
from gateway.leak_guard.matcher import LEAK_UNITS, LEAK_WORDS, MIN_SECRET_UNITS, SHINGLE_WORDS
from gateway.leak_guard.normaliser import CJK_UNITS, WORD_UNITS, normalise, words
from gateway.leak_guard.openai_completion import (
    WITHHELD_FINISH_REASON,
    WITHHELD_NOTICE,
    completion_object,
    withheld_completion,
    withheld_object,
)
from gateway.leak_guard.openai_sse import SseLeakFilter
from gateway.leak_guard.stream_scanner import StreamScanner

__all__ = [
    "CANARY_LENGTH",
    "CJK_UNITS",
    "LEAK_UNITS",
    "LEAK_WORDS",
    "MIN_SECRET_UNITS",
    "SHINGLE_WORDS",
    "WITHHELD_FINISH_REASON",
    "WITHHELD_NOTICE",
    "WORD_UNITS",
    "LeakGuard",
    "SseLeakFilter",
    "StreamScanner",
    "completion_object",
    "new_canary",
    "normalise",
    "plant_canary",
    "version_canary",
    "withheld_completion",
    "withheld_object",
    "words",
]
