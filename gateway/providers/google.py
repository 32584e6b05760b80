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
from gateway.providers.http_client import HttpAdapter
from gateway.providers.openai_answer import ChunkWriter, completion_body, tool_call_json
from gateway.providers.openai_request import (
    chosen_function,
    content_parts,
    data_url,
    functions_of,
    image_url_of,
    stop_sequences,
    texts_of,
    tool_calls_of,
    unsupported,
)
from gateway.providers.openai_wire import ChatCompletionRequest, ChatMessage, ContentPart
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
        cached_input_tokens=counts.cached_content_token_count or 0,  # of prompt_token_count
    )


# -- request ------------------------------------------------------------------------------------

# The generateContent request as we build it: our own JSON.
GeminiPart = dict[str, Any]


def _user_parts(content: str | list[ContentPart] | None, provider: str) -> list[GeminiPart]:
    parts: list[GeminiPart] = []
    for part in content_parts(content):
        kind = part["type"]
        if kind == "text":
            text = part.get("text", "")
            if text:
                parts.append({"text": text})
        elif kind == "image_url":
            inline = data_url(image_url_of(part))
            if inline is None:
                raise unsupported(provider, "image URLs other than data: URLs")
            parts.append({"inlineData": {"mimeType": inline[0], "data": inline[1]}})
        else:
            raise unsupported(provider, f"{kind} content")
    return parts


def _model_parts(
    message: ChatMessage, provider: str, call_names: dict[str, str]
) -> list[GeminiPart]:
    parts: list[GeminiPart] = [
        {"text": text} for text in texts_of(message.get("content"), provider) if text
    ]
    for call_id, name, arguments in tool_calls_of(message, provider):
        call_names[call_id] = name
        part: GeminiPart = {"functionCall": {"name": name, "args": arguments}}
        _, marked, signature = call_id.partition(SIGNATURE_MARK)
        if marked and signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _function_response(
    message: ChatMessage, provider: str, call_names: dict[str, str]
) -> GeminiPart:
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


def _generation_config(payload: ChatCompletionRequest) -> dict[str, object]:
    config: dict[str, object] = {}
    for theirs, value in (
        ("temperature", payload.get("temperature")),
        ("topP", payload.get("top_p")),
        ("presencePenalty", payload.get("presence_penalty")),
        ("frequencyPenalty", payload.get("frequency_penalty")),
        ("maxOutputTokens", payload.get("max_tokens")),
        ("seed", payload.get("seed")),
    ):
        if value is not None:
            config[theirs] = value
    stops = stop_sequences(payload.get("stop"))
    if stops:
        config["stopSequences"] = stops
    response_format = payload.get("response_format")
    if response_format is not None:
        if response_format.get("type") == "json_object":
            config["responseMimeType"] = "application/json"
        elif response_format.get("type") == "json_schema":
            config["responseMimeType"] = "application/json"
            json_schema = response_format.get("json_schema")
            schema = json_schema.get("schema") if isinstance(json_schema, dict) else None
            if isinstance(schema, dict):
                config["responseJsonSchema"] = schema
    return config


_CALLING_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def _tools(payload: ChatCompletionRequest, provider: str) -> dict[str, object]:
    tools = payload.get("tools")
    if not tools:
        return {}
    declarations = []
    for function in functions_of(tools, provider):
        declaration: dict[str, object] = {"name": str(function.get("name", ""))}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters"):
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    fields: dict[str, object] = {"tools": [{"functionDeclarations": declarations}]}
    choice = payload.get("tool_choice")
    calling: dict[str, object] | None = None
    if isinstance(choice, str) and choice in _CALLING_MODES:
        calling = {"mode": _CALLING_MODES[choice]}
    elif (name := chosen_function(choice)) is not None:
        calling = {"mode": "ANY", "allowedFunctionNames": [name]}
    if calling is not None:
        fields["toolConfig"] = {"functionCallingConfig": calling}
    return fields


def to_generate_request(
    payload: ChatCompletionRequest, *, provider: str = "google"
) -> dict[str, Any]:
    """The generateContent request for an OpenAI chat payload (the model goes in the URL)."""
    system: list[GeminiPart] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool call id -> function name, for the tool results
    for message in payload["messages"]:
        role = message["role"]
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


class GoogleProvider(HttpAdapter):
    def __init__(
        self, name: str, base_url: str, api_key: str, session: aiohttp.ClientSession
    ) -> None:
        super().__init__(name, session, {"x-goog-api-key": api_key})
        base = base_url.rstrip("/")
        self._models_url = (base if base.endswith("/v1beta") else base + "/v1beta") + "/models/"

    def _url(self, payload: ChatCompletionRequest, action: str) -> str:
        model = payload["model"].removeprefix("models/")
        return self._models_url + quote(model, safe="") + action

    async def complete(
        self, payload: ChatCompletionRequest, *, headers: dict[str, str]
    ) -> Completion:
        body = orjson.dumps(to_generate_request(payload, provider=self.name))
        answer = await self._post(self._url(payload, ":generateContent"), body, headers)
        return to_completion(answer, payload["model"])

    @contextlib.asynccontextmanager
    async def stream(
        self, payload: ChatCompletionRequest, *, headers: dict[str, str]
    ) -> AsyncIterator[ChatStream]:
        body = orjson.dumps(to_generate_request(payload, provider=self.name))
        url = self._url(payload, ":streamGenerateContent?alt=sse")
        response = await self._open_stream(url, body, headers)
        try:
            yield await start_translated(response, GeminiStream(payload["model"]))
        finally:
            response.close()
