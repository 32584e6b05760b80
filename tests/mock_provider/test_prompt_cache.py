"""The mock's prompt cache: a repeated prefix is reported as cached, in each provider's own
usage fields, JSON and streamed (what the gateway's cached-token metering is tested with),
for requests with the `cache` control."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest

from mock_provider.app import PROMPT_CACHE_ENV, create_app
from tests.mock_provider.wire import chat_request, sse_events

SYSTEM_CHARS = 4000
CACHE = {"x-mock-cache": "1"}  # 1,000 tokens by the mock's four-characters-a-token estimate


def _system() -> str:
    """A prefix no other test sent (the mock's cache lives as long as the session's mock)."""
    return (uuid.uuid4().hex + " You are a patient tutor." * 200)[:SYSTEM_CHARS]


def _usage(fmt: str, mock_http: httpx.Client, body: dict[str, Any], path: str, stream: bool) -> Any:
    """The usage the answer reports (a stream's: its last usage, merged for Anthropic)."""
    if not stream:
        answer = mock_http.post(path, json=body, headers=CACHE).json()
        return answer["usageMetadata"] if fmt == "gemini" else answer["usage"]
    if fmt == "openai":
        body["stream_options"] = {"include_usage": True}
    with mock_http.stream("POST", path, json=body, headers=CACHE) as response:
        events = [orjson.loads(data) for _, data in sse_events(response) if data != "[DONE]"]
    if fmt == "gemini":
        return events[-1]["usageMetadata"]
    if fmt == "openai":
        return events[-1]["usage"]
    start = next(e["message"]["usage"] for e in events if e["type"] == "message_start")
    delta = next(e["usage"] for e in events if e["type"] == "message_delta")
    return {**start, **delta}


def _ask(fmt: str, mock_http: httpx.Client, question: str, system: str, stream: bool) -> Any:
    """The usage reported for one question after `system`, with the cache control."""
    path, body = chat_request(fmt, question, system=system, stream=stream)
    return _usage(fmt, mock_http, body, path, stream)


@pytest.mark.parametrize("stream", [False, True])
def test_openai_reports_a_repeated_prefix_as_cached_tokens(
    mock_http: httpx.Client, stream: bool
) -> None:
    system = _system()
    first = _ask("openai", mock_http, "first", system, stream)
    assert first["prompt_tokens_details"] == {"cached_tokens": 0}
    second = _ask("openai", mock_http, "a different question", system, stream)
    assert second["prompt_tokens_details"] == {"cached_tokens": SYSTEM_CHARS // 4}
    assert second["prompt_tokens"] > SYSTEM_CHARS // 4  # cached tokens are part of the prompt's
    # Another model has its own cache.
    path, body = chat_request("openai", "first", system=system, stream=stream)
    body["model"] = "gpt-other"
    assert (
        _usage("openai", mock_http, body, path, stream)["prompt_tokens_details"]["cached_tokens"]
        == 0
    )


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_caches_only_what_cache_control_marks(
    mock_http: httpx.Client, stream: bool
) -> None:
    system = _system()
    path, body = chat_request("anthropic", "first", system=system, stream=stream)
    plain = _usage("anthropic", mock_http, body, path, stream)
    assert plain["cache_read_input_tokens"] == plain["cache_creation_input_tokens"] == 0
    assert _usage("anthropic", mock_http, body, path, stream)["cache_read_input_tokens"] == 0

    marked = [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}},
              {"type": "text", "text": f"per call {uuid.uuid4()}"}]  # fmt: skip
    body["system"] = marked
    written = _usage("anthropic", mock_http, body, path, stream)
    assert written["cache_creation_input_tokens"] == SYSTEM_CHARS // 4
    assert written["cache_read_input_tokens"] == 0
    body["system"] = [marked[0], {"type": "text", "text": "another tail"}]
    read = _usage("anthropic", mock_http, body, path, stream)
    assert read["cache_read_input_tokens"] == SYSTEM_CHARS // 4
    assert read["cache_creation_input_tokens"] == 0
    # Anthropic's input_tokens are the uncached rest (the tail and the question).
    prompt_chars = SYSTEM_CHARS + len("another tail") + len("first")
    assert read["input_tokens"] == prompt_chars // 4 - SYSTEM_CHARS // 4


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_reports_a_repeated_prefix_as_cached_content(
    mock_http: httpx.Client, stream: bool
) -> None:
    system = _system()
    assert "cachedContentTokenCount" not in _ask("gemini", mock_http, "first", system, stream)
    again = _ask("gemini", mock_http, "again", system, stream)
    assert again["cachedContentTokenCount"] == SYSTEM_CHARS // 4
    assert again["promptTokenCount"] > again["cachedContentTokenCount"]


def test_a_prompt_without_a_system_text_caches_nothing(mock_http: httpx.Client) -> None:
    for _ in range(2):
        path, body = chat_request("openai", "no system here")
        usage = mock_http.post(path, json=body, headers=CACHE).json()["usage"]
        assert usage["prompt_tokens_details"] == {"cached_tokens": 0}


def test_without_the_cache_control_nothing_is_cached(mock_http: httpx.Client) -> None:
    system = _system()
    for directive in ("", "", "[[mock cache=0]]"):
        path, body = chat_request("openai", f"hi {directive}", system=system)
        usage = mock_http.post(path, json=body).json()["usage"]
        assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
    path, body = chat_request("openai", "hi [[mock cache]]", system=system)
    first = mock_http.post(path, json=body).json()["usage"]["prompt_tokens_details"]
    assert first == {"cached_tokens": 0}  # the first request that uses the cache writes it
    again = mock_http.post(path, json=body).json()["usage"]["prompt_tokens_details"]
    assert again == {"cached_tokens": SYSTEM_CHARS // 4}


def test_the_cache_can_be_on_for_every_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m mock_provider --prompt-cache` (what `./dev up` runs) turns it on for every
    request, through the environment its workers' app factory reads."""
    assert create_app().config.prompt_cache is False
    monkeypatch.setenv(PROMPT_CACHE_ENV, "1")
    assert create_app().config.prompt_cache is True
