"""Google's Gemini API (generateContent / streamGenerateContent) behind the OpenAI chat format.

Request (`to_generate_request`): every system/developer message goes to `systemInstruction`
as text parts, in order (the creator's prompt first); user and tool messages become `user`
contents, assistant messages `model` contents, consecutive ones of the same role merged.
Agent parameters go to `generationConfig` (temperature, topP, maxOutputTokens, stopSequences,
and seed, penalties and JSON response formats where the request has them). Tools become
`functionDeclarations` (with their JSON Schema as `parametersJsonSchema`), tool calls
`functionCall` parts and tool results `functionResponse` parts.

Gemini 3 signs the function calls it makes (`thoughtSignature`) and refuses a conversation
that sends them back unsigned. An OpenAI client keeps nothing but the tool call id, so the
signature travels inside it (`<id>` + `SIGNATURE_MARK` + `<signature>`) and is restored
when the client sends the call back.

Answers: each GenerateContentResponse (the whole answer, or one SSE event of a stream)
becomes OpenAI output; `finishReason` maps to OpenAI's finish reasons. Thought parts are
never relayed. Usage: prompt (+ tool-use prompt) tokens in, candidate (+ thinking) tokens
out, as Google bills them.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import msgspec
import orjson

from common.sse import DONE, SseEvent
from gateway.providers.base import ChatStream, Completion, Usage
from gateway.providers.errors import ProviderUnavailable
from gateway.providers.gemini_wire import (
    RESPONSE,
    FunctionCall,
    GenerateContentResponse,
    Part,
    TokenCounts,
)
from gateway.providers.http_client import open_stream, post
from gateway.providers.openai_answer import ChunkWriter, completion_body, tool_call_json
from gateway.providers.openai_request import (
    content_parts,
    data_url,
    stop_sequences,
    texts_of,
    tool_arguments,
    unsupported,
)
from gateway.providers.translated_stream import start_translated

SIGNATURE_MARK = "~sig~"
_FILTERED = frozenset(
    {
        "SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
        "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
    }
)  # fmt: skip


def finish_reason(reason: str | None, *, called_tools: bool) -> str:
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    return "tool_calls" if called_tools else "stop"


def usage_of(counts: TokenCounts | None) -> Usage:
    if counts is None:
        return Usage()
    return Usage(
        input_tokens=(counts.prompt_token_count or 0) + (counts.tool_use_prompt_token_count or 0),
        output_tokens=(counts.candidates_token_count or 0) + (counts.thoughts_token_count or 0),
    )


# -- request ------------------------------------------------------------------------------------


def _user_parts(content: Any, provider: str) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for part in content_parts(content):
        kind = part.get("type")
        if kind == "text":
            text = str(part.get("text", ""))
            if text:
                parts.append({"text": text})
        elif kind == "image_url":
            inline = data_url(str((part.get("image_url") or {}).get("url", "")))
            if inline is None:
                raise unsupported(provider, "image URLs other than data: URLs")
            parts.append({"inlineData": {"mimeType": inline[0], "data": inline[1]}})
        else:
            raise unsupported(provider, f"{kind} content")
    return parts


def _model_parts(
    message: dict[str, Any], provider: str, call_names: dict[str, str]
) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [
        {"text": text} for text in texts_of(message.get("content"), provider) if text
    ]
    for call in message.get("tool_calls") or ():
        if not isinstance(call, dict) or call.get("type", "function") != "function":
            raise unsupported(provider, "this kind of tool call")
        name = str((call.get("function") or {}).get("name", ""))
        call_id = str(call.get("id", ""))
        call_names[call_id] = name
        part: dict[str, Any] = {
            "functionCall": {"name": name, "args": tool_arguments(call, provider)}
        }
        _, marked, signature = call_id.partition(SIGNATURE_MARK)
        if marked and signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _function_response(
    message: dict[str, Any], provider: str, call_names: dict[str, str]
) -> dict[str, Any]:
    name = call_names.get(str(message.get("tool_call_id", "")))
    if name is None:
        raise unsupported(provider, "a tool message that answers no earlier tool call")
    text = "".join(texts_of(message.get("content"), provider))
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    response = parsed if isinstance(parsed, dict) else {"content": text}
    return {"functionResponse": {"name": name, "response": response}}


def _generation_config(payload: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        value = payload.get(ours)
        if isinstance(value, int | float) and not isinstance(value, bool):
            config[theirs] = value
    if isinstance(payload.get("max_tokens"), int):
        config["maxOutputTokens"] = payload["max_tokens"]
    if isinstance(payload.get("seed"), int):
        config["seed"] = payload["seed"]
    stops = stop_sequences(payload.get("stop"))
    if stops:
        config["stopSequences"] = stops
    response_format = payload.get("response_format")
    if isinstance(response_format, dict):
        if response_format.get("type") == "json_object":
            config["responseMimeType"] = "application/json"
        elif response_format.get("type") == "json_schema":
            config["responseMimeType"] = "application/json"
            schema = (response_format.get("json_schema") or {}).get("schema")
            if isinstance(schema, dict):
                config["responseJsonSchema"] = schema
    return config


def _tools(payload: dict[str, Any], provider: str) -> dict[str, Any]:
    tools = payload.get("tools")
    if not isinstance(tools, list) or not tools:
        return {}
    declarations = []
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise unsupported(provider, "this kind of tool")
        function = tool.get("function") or {}
        declaration: dict[str, Any] = {"name": str(function.get("name", ""))}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters"):
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    fields: dict[str, Any] = {"tools": [{"functionDeclarations": declarations}]}
    choice = payload.get("tool_choice")
    calling: dict[str, Any] | None = None
    if choice in ("auto", "none", "required"):
        calling = {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        calling = {"mode": "ANY", "allowedFunctionNames": [str(choice["function"].get("name"))]}
    if calling is not None:
        fields["toolConfig"] = {"functionCallingConfig": calling}
    return fields


def to_generate_request(payload: dict[str, Any], *, provider: str = "google") -> dict[str, Any]:
    """The generateContent request for an OpenAI chat payload (the model goes in the URL)."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool call id -> function name, for the tool results
    for message in payload.get("messages") or ():
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(
                {"text": text} for text in texts_of(message.get("content"), provider) if text
            )
            continue
        if role == "assistant":
            turn, parts = "model", _model_parts(message, provider, call_names)
        elif role == "tool":
            turn, parts = "user", [_function_response(message, provider, call_names)]
        else:
            turn, parts = "user", _user_parts(message.get("content"), provider)
        if not parts:
            continue
        if contents and contents[-1]["role"] == turn:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": turn, "parts": parts})
    request: dict[str, Any] = {"contents": contents}
    if system:
        request["systemInstruction"] = {"parts": system}
    config = _generation_config(payload)
    if config:
        request["generationConfig"] = config
    request.update(_tools(payload, provider))
    return request


# -- answers -----------------------------------------------------------------------------------


def _call_id(part: Part, call: FunctionCall) -> str:
    call_id = call.id or f"call_{uuid.uuid4().hex[:24]}"
    signature = part.thought_signature
    return call_id if signature is None else call_id + SIGNATURE_MARK + signature


class _Candidate:
    """What one GenerateContentResponse adds to the answer."""

    __slots__ = ("finish", "texts", "tool_calls")

    def __init__(self, response: GenerateContentResponse) -> None:
        self.texts: list[str] = []
        self.tool_calls: list[tuple[str, str, str]] = []  # (id, name, arguments)
        self.finish: str | None = None
        if not response.candidates:
            feedback = response.prompt_feedback
            if feedback is not None and feedback.block_reason:
                self.finish = "SAFETY"  # the prompt itself was blocked
            return
        candidate = response.candidates[0]
        for part in candidate.content.parts if candidate.content is not None else ():
            if part.thought:
                continue
            if part.text is not None:
                self.texts.append(part.text)
            elif (call := part.function_call) is not None:
                arguments = orjson.dumps(call.args or {}).decode()
                self.tool_calls.append((_call_id(part, call), call.name, arguments))
        if candidate.finish_reason:
            self.finish = candidate.finish_reason


def _response_id(response: GenerateContentResponse) -> str:
    return response.response_id or f"chatcmpl-{uuid.uuid4().hex}"


def to_completion(body: bytes, model: str) -> Completion:
    """A GenerateContentResponse → an OpenAI chat.completion body, and its usage."""
    try:
        response = RESPONSE.decode(body)
    except msgspec.DecodeError:
        raise ProviderUnavailable("The model provider sent an unreadable answer.") from None
    candidate = _Candidate(response)
    usage = usage_of(response.usage_metadata)
    reason = finish_reason(candidate.finish, called_tools=bool(candidate.tool_calls))
    usage.finish_reasons = (reason,)
    answer = completion_body(
        id=_response_id(response),
        created=int(time.time()),
        model=response.model_version or model,
        text="".join(candidate.texts),
        tool_calls=[tool_call_json(*call) for call in candidate.tool_calls],
        finish_reason=reason,
        usage=usage,
    )
    return Completion(body=answer, usage=usage)


class GeminiStream:
    """Gemini SSE events (each a GenerateContentResponse) → OpenAI chunk bytes (a
    `StreamTranslator`). Gemini has no end-of-stream event: the answer is complete when a
    candidate gave its finish reason and the stream then ended cleanly."""

    __slots__ = ("_finish", "_model", "_tool_calls", "_writer", "usage")

    done = False  # read to the end: usage may come after the finish reason

    def __init__(self, model: str) -> None:
        self._model = model
        self._writer: ChunkWriter | None = None
        self._finish: str | None = None
        self._tool_calls = 0
        self.usage = Usage()

    def feed(self, events: list[SseEvent]) -> bytes:
        out = b""
        for event in events:
            try:
                response = RESPONSE.decode(event.data)
            except msgspec.DecodeError:
                raise ProviderUnavailable("The model provider sent an unreadable stream.") from None
            if response.error is not msgspec.UNSET:
                # Never quoted: it may echo the request, which holds the creator's prompt.
                raise ProviderUnavailable("The model provider failed during the answer.")
            writer = self._writer
            if writer is None:
                writer = self._writer = ChunkWriter(
                    id=_response_id(response),
                    created=int(time.time()),
                    model=response.model_version or self._model,
                )
                out += writer.role()
            if response.usage_metadata is not None:
                self.usage = usage_of(response.usage_metadata)  # cumulative on every event
            candidate = _Candidate(response)
            for text in candidate.texts:
                if text:
                    out += writer.text(text)
            for call_id, name, arguments in candidate.tool_calls:
                out += writer.tool_call_start(self._tool_calls, call_id, name)
                out += writer.tool_call_arguments(self._tool_calls, arguments)
                self._tool_calls += 1
            if candidate.finish is not None:
                self._finish = candidate.finish
        return out

    def end(self) -> bytes:
        if self._finish is None or self._writer is None:
            raise ProviderUnavailable("The model provider ended the stream early.")
        writer = self._writer
        reason = finish_reason(self._finish, called_tools=self._tool_calls > 0)
        self.usage.finish_reasons = (reason,)
        return writer.finish(reason) + writer.usage(self.usage) + DONE


# -- the adapter ----------------------------------------------------------------------------------


class GoogleProvider:
    def __init__(
        self, name: str, base_url: str, api_key: str, session: aiohttp.ClientSession
    ) -> None:
        self.name = name
        base = base_url.rstrip("/")
        self._models_url = (base if base.endswith("/v1beta") else base + "/v1beta") + "/models/"
        self._headers = {"x-goog-api-key": api_key, "content-type": "application/json"}
        self._session = session

    async def aclose(self) -> None:
        await self._session.close()

    def _url(self, payload: dict[str, Any], action: str) -> str:
        model = str(payload.get("model", "")).removeprefix("models/")
        return self._models_url + quote(model, safe="") + action

    def _request_headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {**self._headers, **headers} if headers else self._headers

    async def complete(self, payload: dict[str, Any], *, headers: dict[str, str]) -> Completion:
        body = orjson.dumps(to_generate_request(payload, provider=self.name))
        answer = await post(
            self._session,
            self._url(payload, ":generateContent"),
            body,
            self._request_headers(headers),
            self.name,
        )
        return to_completion(answer, str(payload.get("model", "")))

    @contextlib.asynccontextmanager
    async def stream(
        self, payload: dict[str, Any], *, headers: dict[str, str]
    ) -> AsyncIterator[ChatStream]:
        body = orjson.dumps(to_generate_request(payload, provider=self.name))
        response = await open_stream(
            self._session,
            self._url(payload, ":streamGenerateContent?alt=sse"),
            body,
            self._request_headers(headers),
            self.name,
        )
        try:
            translator = GeminiStream(str(payload.get("model", "")))
            yield await start_translated(response, translator)
        finally:
            # Closing (not releasing) an unfinished response drops its connection, so an
            # abandoned stream stops the provider promptly.
            response.close()
