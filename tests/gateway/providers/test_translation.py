"""The translators and the SSE parser on their own: pure functions, no network."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.sse import SseParser, events_of
from gateway.providers.anthropic import AnthropicStream, to_messages_request
from gateway.providers.anthropic import to_completion as anthropic_completion
from gateway.providers.base import Usage
from gateway.providers.errors import ProviderRejectedRequest, ProviderUnavailable
from gateway.providers.google import SIGNATURE_MARK, GeminiStream, to_generate_request
from gateway.providers.google import to_completion as gemini_completion
from gateway.providers.openai_compatible import usage_from_sse_tail, usage_of_answer

# Text that stresses the wire: line separators JSON keeps raw (U+2028, U+2029, U+0085),
# quotes, multi-byte characters. Newlines too: they are escaped inside JSON.
TEXT = st.text(
    alphabet=st.sampled_from([*'ab \n\r"\\é€😀', "\u2028", "\u2029", "\x85"]),
    max_size=12,
)
CONTENT = st.one_of(
    TEXT,
    st.lists(st.builds(lambda text: {"type": "text", "text": text}, TEXT), min_size=1, max_size=3),
)
MESSAGES = st.lists(
    st.builds(
        lambda role, content: {"role": role, "content": content},
        st.sampled_from(["system", "developer", "user", "assistant"]),
        CONTENT,
    ),
    min_size=1,
    max_size=10,
)


def texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [part["text"] for part in content]


def expected_texts(messages: list[dict[str, Any]], *, system: bool) -> list[str]:
    """Every non-empty text of the system (or the conversation) messages, in order."""
    return [
        text
        for message in messages
        if (message["role"] in ("system", "developer")) is system
        for text in texts(message["content"])
        if text
    ]


# -- Anthropic request ---------------------------------------------------------------------


@settings(max_examples=300)
@given(messages=MESSAGES)
def test_property_anthropic_translation_keeps_every_text_and_alternates_roles(
    messages: list[dict[str, Any]],
) -> None:
    request = to_messages_request({"model": "m", "messages": messages}, stream=False)
    # The system text, in order, the creator's first.
    system = [block["text"] for block in request.get("system", [])]
    assert system == expected_texts(messages, system=True)
    # Roles alternate: Anthropic merges nothing for us.
    roles = [message["role"] for message in request["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles))
    # No content lost: only the end of a final assistant turn loses its whitespace.
    sent = [block["text"] for m in request["messages"] for block in m["content"]]
    expected = expected_texts(messages, system=False)
    if sent != expected:
        last = next(
            m for m in reversed(messages)
            if m["role"] in ("user", "assistant") and any(texts(m["content"]))
        )  # fmt: skip
        assert last["role"] == "assistant"
        kept = len(sent)
        if kept:
            assert sent[:-1] == expected[: kept - 1]
            assert sent[-1] in (expected[kept - 1], expected[kept - 1].rstrip())
        assert all(not text.strip() for text in expected[kept:])
    if request["messages"] and request["messages"][-1]["role"] == "assistant":
        assert sent[-1] == sent[-1].rstrip()
    assert all(sent)  # Anthropic refuses empty text blocks
    assert request["max_tokens"] == 1024


def test_anthropic_request_parameters() -> None:
    request = to_messages_request(
        {
            "model": "claude",
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 1.6,  # OpenAI's range is 0-2, Anthropic's 0-1
            "top_p": 0.9,
            "max_tokens": 55,
            "stop": "END",
            "user": "dev-1",
            "seed": 3,
            "stream_options": {"include_usage": True},
        },
        stream=True,
    )
    assert request == {
        "model": "claude",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "max_tokens": 55,
        "temperature": 1.0,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "dev-1"},
        "stream": True,
    }


def test_anthropic_tools_calls_and_results() -> None:
    tool = {
        "type": "function",
        "function": {"name": "weather", "description": "d", "parameters": {"type": "object"}},
    }
    request = to_messages_request(
        {
            "model": "claude",
            "messages": [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "toolu_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
                {"role": "user", "content": "thanks"},
            ],
            "tools": [tool],
            "tool_choice": "required",
            "parallel_tool_calls": False,
        },
        stream=False,
    )
    assert request["tools"] == [
        {"name": "weather", "description": "d", "input_schema": {"type": "object"}}
    ]
    assert request["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert request["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}
            ],
        },
        {
            "role": "user",  # the tool result and the next user message: one turn
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "sunny"}],
                },
                {"type": "text", "text": "thanks"},
            ],
        },
    ]


def test_images_translate_and_unsupported_content_is_a_400() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    message = {"role": "user", "content": [{"type": "text", "text": "see"}, image]}
    anthropic = to_messages_request({"model": "m", "messages": [message]}, stream=False)
    assert anthropic["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
    }
    gemini = to_generate_request({"model": "m", "messages": [message]})
    assert gemini["contents"][0]["parts"][1] == {
        "inlineData": {"mimeType": "image/png", "data": "AAAA"}
    }
    audio = {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
    with pytest.raises(ProviderRejectedRequest):
        to_messages_request({"model": "m", "messages": [audio]}, stream=False)
    with pytest.raises(ProviderRejectedRequest):
        to_generate_request({"model": "m", "messages": [audio]})


# -- Gemini request --------------------------------------------------------------------------


@settings(max_examples=300)
@given(messages=MESSAGES)
def test_property_gemini_translation_keeps_every_text_and_alternates_roles(
    messages: list[dict[str, Any]],
) -> None:
    request = to_generate_request({"model": "m", "messages": messages})
    system = [part["text"] for part in request.get("systemInstruction", {}).get("parts", [])]
    assert system == expected_texts(messages, system=True)
    roles = [content["role"] for content in request["contents"]]
    assert set(roles) <= {"user", "model"}
    assert all(a != b for a, b in itertools.pairwise(roles))
    sent = [part["text"] for content in request["contents"] for part in content["parts"]]
    assert sent == expected_texts(messages, system=False)


def test_gemini_generation_config_and_tools() -> None:
    request = to_generate_request(
        {
            "model": "gemini",
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 1.5,
            "top_p": 0.8,
            "max_tokens": 99,
            "stop": ["a", "b"],
            "seed": 7,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"schema": {"type": "object"}},
            },
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
        }
    )
    assert request["generationConfig"] == {
        "temperature": 1.5,
        "topP": 0.8,
        "maxOutputTokens": 99,
        "seed": 7,
        "stopSequences": ["a", "b"],
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
    }
    assert request["tools"] == [
        {"functionDeclarations": [{"name": "f", "parametersJsonSchema": {"type": "object"}}]}
    ]
    assert request["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}
    }


def test_a_gemini_thought_signature_survives_the_round_trip_through_the_client() -> None:
    answer = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "thinking...", "thought": True},
                        {
                            "functionCall": {"name": "weather", "args": {"city": "Oslo"}},
                            "thoughtSignature": "c2lnbmF0dXJl+/=",
                        },
                    ],
                },
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 5,
            "candidatesTokenCount": 3,
            "thoughtsTokenCount": 4,
        },
    }
    completion = gemini_completion(orjson.dumps(answer), "gemini")
    message = orjson.loads(completion.body)["choices"][0]
    assert message["finish_reason"] == "tool_calls"
    assert message["message"]["content"] is None  # thoughts are never relayed
    [call] = message["message"]["tool_calls"]
    assert call["function"] == {"name": "weather", "arguments": '{"city":"Oslo"}'}
    assert call["id"].endswith(SIGNATURE_MARK + "c2lnbmF0dXJl+/=")
    assert completion.usage == Usage(5, 7, ("tool_calls",))  # thinking is billed
    # The client sends the call back with its result: the signature is restored.
    request = to_generate_request(
        {
            "model": "gemini",
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": call["id"], "content": '{"sky": "clear"}'},
            ],
        }
    )
    assert request["contents"][1] == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "weather", "args": {"city": "Oslo"}},
                "thoughtSignature": "c2lnbmF0dXJl+/=",
            }
        ],
    }
    assert request["contents"][2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "weather", "response": {"sky": "clear"}}}],
    }


# -- answers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_anthropic_stop_reasons(stop_reason: str, finish: str) -> None:
    completion = anthropic_completion(
        orjson.dumps(
            {
                "id": "msg_1",
                "model": "claude",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                "stop_reason": stop_reason,
                "usage": {
                    "input_tokens": 3,
                    "cache_creation_input_tokens": 10,
                    "cache_read_input_tokens": 20,
                    "output_tokens": 4,
                },
            }
        ),
        "claude",
    )
    body = orjson.loads(completion.body)
    assert body["choices"][0]["finish_reason"] == finish
    assert body["choices"][0]["message"]["content"] == "ab"
    # Cached input counts, and is told apart: 20 read from the cache, 10 written to it.
    assert completion.usage == Usage(33, 4, (finish,), cached_input_tokens=20,
                                     cache_write_input_tokens=10)  # fmt: skip
    details = {"cached_tokens": 20, "cache_write_tokens": 10}
    assert body["usage"]["prompt_tokens_details"] == details


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("OTHER", "stop"),
    ],
)
def test_gemini_finish_reasons(reason: str, finish: str) -> None:
    answer = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}
    completion = gemini_completion(orjson.dumps(answer), "g")
    assert orjson.loads(completion.body)["choices"][0]["finish_reason"] == finish


def test_a_blocked_gemini_prompt_is_a_content_filter_finish() -> None:
    blocked = orjson.dumps({"promptFeedback": {"blockReason": "SAFETY"}})
    body = orjson.loads(gemini_completion(blocked, "g").body)
    assert body["choices"][0]["finish_reason"] == "content_filter"
    assert body["choices"][0]["message"]["content"] == ""


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n"


ANTHROPIC_TOOL_STREAM = b"".join(
    [
        sse("message_start", {"type": "message_start", "message": {
            "id": "msg_9", "model": "claude", "usage": {"input_tokens": 9, "output_tokens": 1}}}),
        sse("content_block_start", {"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        sse("content_block_delta", {"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": "Let me check\u2028."}}),
        b": a comment\n\n",
        sse("ping", {"type": "ping"}),
        sse("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "toolu_7", "name": "weather", "input": {}}}),
        sse("content_block_delta", {"type": "content_block_delta", "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"city": '}}),
        sse("content_block_delta", {"type": "content_block_delta", "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '"Oslo"}'}}),
        sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 12}}),
        sse("message_stop", {"type": "message_stop"}),
    ]
)  # fmt: skip


def translate(translator: AnthropicStream | GeminiStream, pieces: list[bytes]) -> bytes:
    parser = SseParser()
    out = b""
    for piece in pieces:
        out += translator.feed(parser.feed(piece))
        if translator.done:
            return out + translator.end()
    return out + translator.feed(parser.flush()) + translator.end()


def chunks_of(raw: bytes) -> list[dict[str, Any]]:
    events = [event.data for event in events_of(raw)]
    assert events[-1] == b"[DONE]"
    return [orjson.loads(event) for event in events[:-1]]


@settings(max_examples=200)
@given(cuts=st.lists(st.integers(0, len(ANTHROPIC_TOOL_STREAM)), max_size=12))
def test_property_anthropic_stream_translation_is_split_invariant(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(ANTHROPIC_TOOL_STREAM)]
    pieces = [ANTHROPIC_TOOL_STREAM[a:b] for a, b in itertools.pairwise(bounds)]
    translator = AnthropicStream("claude")
    chunks = chunks_of(translate(translator, pieces))
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content") or "" for d in deltas) == "Let me check\u2028."
    calls = [call for d in deltas for call in d.get("tool_calls", [])]
    assert calls[0] == {
        "index": 0, "id": "toolu_7", "type": "function",
        "function": {"name": "weather", "arguments": ""},
    }  # fmt: skip
    assert "".join(c["function"]["arguments"] for c in calls) == '{"city": "Oslo"}'
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"] == {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}
    assert translator.usage == Usage(9, 12, ("tool_calls",))


def test_an_anthropic_stream_without_message_stop_is_incomplete() -> None:
    translator = AnthropicStream("claude")
    cut = ANTHROPIC_TOOL_STREAM.index(b"event: message_stop")
    translator.feed(SseParser().feed(ANTHROPIC_TOOL_STREAM[:cut]))
    with pytest.raises(ProviderUnavailable):
        translator.end()


def test_an_anthropic_error_event_is_unavailable_and_not_quoted() -> None:
    translator = AnthropicStream("claude")
    start = ANTHROPIC_TOOL_STREAM[: ANTHROPIC_TOOL_STREAM.index(b"event: content_block_start")]
    translator.feed(SseParser().feed(start))
    error = sse(
        "error", {"type": "error", "error": {"type": "overloaded_error", "message": "SECRET"}}
    )
    with pytest.raises(ProviderUnavailable) as caught:
        translator.feed(SseParser().feed(error))
    assert "SECRET" not in str(caught.value)


def test_a_gemini_stream_needs_a_finish_reason() -> None:
    translator = GeminiStream("g")
    event = b'data: {"candidates":[{"content":{"parts":[{"text":"partial"}]}}]}\r\n\r\n'
    assert b"partial" in translator.feed(SseParser().feed(event))
    with pytest.raises(ProviderUnavailable):
        translator.end()


# -- what the adapters read of an answer (the *_wire structs) -----------------------------------


def test_an_answer_field_of_the_wrong_type_is_an_unreadable_answer() -> None:
    wrong_anthropic = {"id": "m", "content": [], "usage": {"input_tokens": "three"}}
    with pytest.raises(ProviderUnavailable, match="unreadable answer"):
        anthropic_completion(orjson.dumps(wrong_anthropic), "claude")
    with pytest.raises(ProviderUnavailable, match="unreadable answer"):
        gemini_completion(orjson.dumps({"candidates": [{"finishReason": 7}]}), "g")
    with pytest.raises(ProviderUnavailable, match="unreadable answer"):
        usage_of_answer(b'{"choices": [], "usage": {"prompt_tokens": [1]}}')
    with pytest.raises(ProviderUnavailable, match="unreadable answer"):
        usage_of_answer(b"[]")  # not an object


def test_fields_the_adapters_do_not_read_may_hold_anything() -> None:
    answer = {
        "id": "msg_2",
        "model": "claude",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "c2ln"},
            {"type": "text", "text": "hi", "citations": [{"any": ["shape", 1, None]}]},
        ],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 2, "output_tokens": 1, "server_tool_use": {"x": 1}},
        "container": None,
        "something_new": {"nested": [1, 2, {"deep": True}]},
    }
    completion = anthropic_completion(orjson.dumps(answer), "claude")
    assert orjson.loads(completion.body)["choices"][0]["message"]["content"] == "hi"
    assert completion.usage == Usage(2, 1, ("stop",))
    assert (
        usage_of_answer(
            b'{"choices":[{"finish_reason":null,"message":{"content":{"odd":1}}}],"usage":null}'
        )
        == Usage()
    )


def test_an_anthropic_stream_event_of_a_new_type_is_ignored() -> None:
    cut = ANTHROPIC_TOOL_STREAM.index(b"event: message_stop")
    novel = sse("content_block_stop", {"type": "content_block_stop", "index": 1}) + sse(
        "brand_new_event", {"type": "brand_new_event", "payload": {"index": "not a number"}}
    )
    stream = ANTHROPIC_TOOL_STREAM[:cut] + novel + ANTHROPIC_TOOL_STREAM[cut:]
    translator = AnthropicStream("claude")
    chunks = chunks_of(translate(translator, [stream]))
    assert chunks[-1]["usage"]["completion_tokens"] == 12
    assert translator.usage == Usage(9, 12, ("tool_calls",))


def test_openai_tail_usage_skips_events_cut_or_of_the_wrong_shape() -> None:
    tail = (
        b'_tokens":3}}\n\n'  # the cut first event
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":6}}\n\n'
        b"data: [DONE]\n\n"
    )
    assert usage_from_sse_tail(tail) == Usage(5, 6, ("length",))
    assert usage_from_sse_tail(b"data: [DONE]\n\n") == Usage()


@pytest.mark.parametrize(
    "message",
    [
        {"role": "assistant", "content": None, "tool_calls": "not a list"},
        {"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": 7}]},
        {"role": "user", "content": [{"type": "image_url", "image_url": "https://x/y.png"}]},
    ],
)
def test_what_the_parser_forwards_unchecked_is_a_400_when_a_translator_cannot_read_it(
    message: dict[str, Any],
) -> None:
    """The request parser checks roles, content and text parts; tool calls and image parts
    are forwarded as sent, so the translating adapters check them (a 400, never a 500)."""
    request: Any = {"model": "m", "messages": [{"role": "user", "content": "hi"}, message]}
    with pytest.raises(ProviderRejectedRequest):
        to_messages_request(request, stream=False)
    with pytest.raises(ProviderRejectedRequest):
        to_generate_request(request)


def test_a_tool_definition_whose_function_is_not_an_object_is_a_400() -> None:
    request: Any = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": "weather"}],
    }
    with pytest.raises(ProviderRejectedRequest):
        to_messages_request(request, stream=False)
    with pytest.raises(ProviderRejectedRequest):
        to_generate_request(request)
