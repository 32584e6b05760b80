"""Tool calls and refusals in the three wire formats: `tool_call`, `tool_arguments` and
`refusal` controls, non-streaming and streamed in pieces."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.mock_provider.wire import FORMATS, chat_request, sse_events

ARGUMENTS = '{"query": "line one\\nline \\"two\\" \\u00e9t\\u00e9"}'
HEADERS = {"x-mock-tool-call": "search", "x-mock-tool-arguments": ARGUMENTS, "x-mock-chunks": "6"}


def test_openai_tool_call_and_refusal(mock_http: httpx.Client) -> None:
    path, body = chat_request("openai", "Find it")
    message = mock_http.post(path, json=body, headers=HEADERS).json()["choices"][0]
    assert message["finish_reason"] == "tool_calls"
    [call] = message["message"]["tool_calls"]
    assert call["function"] == {"name": "search", "arguments": ARGUMENTS}
    assert message["message"]["content"] is None
    refused = mock_http.post(path, json=body, headers={"x-mock-refusal": "1"}).json()["choices"][0]
    assert refused["message"]["refusal"] == "Mock reply to: Find it"
    assert refused["message"]["content"] is None


def test_openai_streamed_tool_call_and_refusal(mock_http: httpx.Client) -> None:
    path, body = chat_request("openai", "Find it", stream=True)
    with mock_http.stream("POST", path, json=body, headers=HEADERS) as response:
        chunks = [orjson.loads(data) for _, data in sse_events(response) if data != "[DONE]"]
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if c["choices"]
             and "tool_calls" in c["choices"][0]["delta"]]  # fmt: skip
    assert calls[0]["id"].startswith("call_")
    assert calls[0]["function"]["name"] == "search"
    assert len(calls) == 7  # the start, then six pieces
    assert "".join(call["function"]["arguments"] for call in calls) == ARGUMENTS
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    with mock_http.stream("POST", path, json=body, headers={"x-mock-refusal": "1"}) as response:
        chunks = [orjson.loads(data) for _, data in sse_events(response) if data != "[DONE]"]
    refusal = "".join(c["choices"][0]["delta"].get("refusal") or "" for c in chunks)
    assert refusal == "Mock reply to: Find it"


def test_anthropic_tool_use_and_refusal(mock_http: httpx.Client) -> None:
    path, body = chat_request("anthropic", "Find it")
    message = mock_http.post(path, json=body, headers=HEADERS).json()
    assert message["stop_reason"] == "tool_use"
    [block] = message["content"]
    assert block["type"] == "tool_use"
    assert block["name"] == "search"
    assert block["input"] == orjson.loads(ARGUMENTS)
    refused = mock_http.post(path, json=body, headers={"x-mock-refusal": "1"}).json()
    assert refused["stop_reason"] == "refusal"
    body["stream"] = True
    with mock_http.stream("POST", path, json=body, headers=HEADERS) as response:
        events = [(name, orjson.loads(data)) for name, data in sse_events(response)]
    start = next(data for name, data in events if name == "content_block_start")
    assert start["content_block"]["type"] == "tool_use"
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    assert {delta["type"] for delta in deltas} == {"input_json_delta"}
    assert len(deltas) == 6
    assert "".join(delta["partial_json"] for delta in deltas) == ARGUMENTS


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_function_call_and_refusal(mock_http: httpx.Client, stream: bool) -> None:
    path, body = chat_request("gemini", "Find it", stream=stream)
    if stream:
        with mock_http.stream("POST", path, json=body, headers=HEADERS) as response:
            [answer] = [orjson.loads(data) for _, data in sse_events(response)]
    else:
        answer = mock_http.post(path, json=body, headers=HEADERS).json()
    [part] = answer["candidates"][0]["content"]["parts"]
    assert part["functionCall"] == {"name": "search", "args": orjson.loads(ARGUMENTS)}
    refused = mock_http.post(
        chat_request("gemini", "Find it")[0], json=body, headers={"x-mock-refusal": "1"}
    ).json()
    assert refused["candidates"][0]["finishReason"] == "SAFETY"


@pytest.mark.parametrize("fmt", FORMATS)
def test_echo_system_goes_into_the_tool_arguments(mock_http: httpx.Client, fmt: str) -> None:
    path, body = chat_request(fmt, "Find it", system="The hidden prompt.")
    headers = {"x-mock-tool-call": "search", "x-mock-echo-system": "1"}
    text = mock_http.post(path, json=body, headers=headers).text
    assert "The hidden prompt." in text
