"""Anthropic and Gemini wire formats, and the routes every format shares, over real HTTP."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.mock_provider.wire import FORMATS, chat_request, error_of, reply_text, sse_events


def test_health(mock_http: httpx.Client) -> None:
    response = mock_http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_anthropic_message(mock_http: httpx.Client) -> None:
    path, body = chat_request("anthropic", "Hello Claude", system="You are terse.")
    response = mock_http.post(path, json=body)
    assert response.status_code == 200
    message = response.json()
    assert message["type"] == "message"
    assert message["role"] == "assistant"
    assert message["id"].startswith("msg_")
    assert message["model"] == "claude-mock"
    assert message["content"] == [{"type": "text", "text": "Mock reply to: Hello Claude"}]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["input_tokens"] >= 1
    assert message["usage"]["output_tokens"] >= 1


def test_anthropic_stream_events(mock_http: httpx.Client) -> None:
    path, body = chat_request("anthropic", "Stream please", stream=True)
    with mock_http.stream("POST", path, json=body, headers={"x-mock-chunks": "3"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [(name, orjson.loads(data)) for name, data in sse_events(response)]
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(payload["type"] == name for name, payload in events)
    start = events[0][1]["message"]
    assert start["role"] == "assistant"
    assert start["content"] == []
    assert start["stop_reason"] is None
    assert start["usage"]["input_tokens"] >= 1
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    deltas = [payload["delta"] for name, payload in events if name == "content_block_delta"]
    assert all(delta["type"] == "text_delta" for delta in deltas)
    assert "".join(delta["text"] for delta in deltas) == "Mock reply to: Stream please"
    final = events[7][1]
    assert final["delta"]["stop_reason"] == "end_turn"
    assert final["usage"]["output_tokens"] >= 1


def test_anthropic_system_as_text_blocks_is_echoed(mock_http: httpx.Client) -> None:
    path, body = chat_request("anthropic", "leak it [[mock echo_system]]")
    body["system"] = [{"type": "text", "text": "rule one"}, {"type": "text", "text": "rule two"}]
    assert reply_text("anthropic", mock_http.post(path, json=body).json()) == "rule one\nrule two"


def test_gemini_generate_content(mock_http: httpx.Client) -> None:
    path, body = chat_request("gemini", "Hello Gemini", system="Be kind.")
    response = mock_http.post(path, json=body)
    assert response.status_code == 200
    result = response.json()
    candidate = result["candidates"][0]
    assert candidate["content"] == {
        "role": "model",
        "parts": [{"text": "Mock reply to: Hello Gemini"}],
    }
    assert candidate["finishReason"] == "STOP"
    usage = result["usageMetadata"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert result["modelVersion"] == "gemini-mock"


def test_gemini_stream_sse(mock_http: httpx.Client) -> None:
    path, body = chat_request("gemini", "Stream Gemini", stream=True)
    with mock_http.stream("POST", path, json=body, headers={"x-mock-chunks": "4"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = [orjson.loads(data) for _, data in sse_events(response)]
    assert len(chunks) == 4
    texts = [chunk["candidates"][0]["content"]["parts"][0]["text"] for chunk in chunks]
    assert "".join(texts) == "Mock reply to: Stream Gemini"
    assert [c["candidates"][0].get("finishReason") for c in chunks] == [None, None, None, "STOP"]
    counts = [chunk["usageMetadata"]["candidatesTokenCount"] for chunk in chunks]
    assert counts == sorted(counts)  # cumulative
    last = chunks[-1]["usageMetadata"]
    assert last["totalTokenCount"] == last["promptTokenCount"] + last["candidatesTokenCount"]


def test_gemini_stream_json_array(mock_http: httpx.Client) -> None:
    _, body = chat_request("gemini", "Array please")
    response = mock_http.post("/v1beta/models/gemini-mock:streamGenerateContent", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    chunks = response.json()
    assert isinstance(chunks, list)
    assert len(chunks) == 5
    texts = [chunk["candidates"][0]["content"]["parts"][0]["text"] for chunk in chunks]
    assert "".join(texts) == "Mock reply to: Array please"


def test_gemini_model_turns_are_not_echoed(mock_http: httpx.Client) -> None:
    path, body = chat_request("gemini", "first")
    body["contents"] += [
        {"role": "model", "parts": [{"text": "answer"}]},
        {"role": "user", "parts": [{"text": "second"}, {"text": "part"}]},
    ]
    assert (
        reply_text("gemini", mock_http.post(path, json=body).json())
        == "Mock reply to: second\npart"
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_json_is_400_in_the_provider_shape(mock_http: httpx.Client, fmt: str) -> None:
    path, _ = chat_request(fmt, "x")
    response = mock_http.post(
        path, content=b'{"messages": [', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    kind, message = error_of(fmt, response.json())
    assert kind in ("invalid_request_error", "INVALID_ARGUMENT")
    assert "JSON" in message


@pytest.mark.parametrize("fmt", FORMATS)
def test_body_without_messages_is_400(mock_http: httpx.Client, fmt: str) -> None:
    path, _ = chat_request(fmt, "x")
    response = mock_http.post(path, json={"model": "m"})
    assert response.status_code == 400
    error_of(fmt, response.json())


def test_unknown_paths_are_404(mock_http: httpx.Client) -> None:
    response = mock_http.post("/v1/completions_typo", json={})
    assert response.status_code == 404
    assert error_of("openai", response.json())[0] == "invalid_request_error"
    assert mock_http.get("/v1/chat/completions").status_code == 404
    gemini = mock_http.post("/v1beta/models/gemini-mock:countTokens", json={})
    assert gemini.status_code == 404
    assert error_of("gemini", gemini.json())[0] == "NOT_FOUND"
    anthropic = mock_http.get("/v1/messages")
    assert anthropic.status_code == 404
    assert error_of("anthropic", anthropic.json())[0] == "not_found_error"


def test_request_log_records_in_order_and_clears(mock_http: httpx.Client) -> None:
    assert mock_http.delete("/_mock/requests").status_code == 200
    assert mock_http.get("/_mock/requests").json() == []
    openai_path, openai_body = chat_request("openai", "one", system="HIDDEN PROMPT")
    anthropic_path, anthropic_body = chat_request("anthropic", "two")
    headers = {
        "authorization": "Bearer sk-test",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "x-request-id": "req-1",
        "user-agent": "not-recorded",
    }
    mock_http.post(openai_path, json=openai_body, headers=headers)
    mock_http.post(anthropic_path, json=anthropic_body, headers={"x-api-key": "ak"})
    mock_http.post("/v1/embeddings", json={"input": "three"})
    mock_http.post(openai_path, content=b"not json")  # unparseable bodies are not recorded
    log = mock_http.get("/_mock/requests").json()
    assert [entry["path"] for entry in log] == [openai_path, anthropic_path, "/v1/embeddings"]
    assert [entry["body"] for entry in log] == [openai_body, anthropic_body, {"input": "three"}]
    assert log[0]["method"] == "POST"
    assert log[0]["body"]["messages"][0] == {"role": "system", "content": "HIDDEN PROMPT"}
    recorded = log[0]["headers"]
    assert recorded == {key: value for key, value in headers.items() if key != "user-agent"}
    assert log[1]["headers"] == {"x-api-key": "ak"}
    assert mock_http.delete("/_mock/requests").status_code == 200
    assert mock_http.get("/_mock/requests").json() == []


def test_request_log_is_bounded(mock_http: httpx.Client) -> None:
    mock_http.delete("/_mock/requests")
    for index in range(205):
        mock_http.post("/v1/embeddings", json={"input": str(index)})
    log = mock_http.get("/_mock/requests").json()
    assert len(log) == 200
    assert log[0]["body"]["input"] == "5"
    assert log[-1]["body"]["input"] == "204"
    mock_http.delete("/_mock/requests")


def test_each_app_has_its_own_log() -> None:
    from mock_provider import create_app

    assert create_app().log is not create_app().log
