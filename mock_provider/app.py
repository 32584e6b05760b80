"""The mock provider's ASGI app: routing and request plumbing (formats live in *_format.py)."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import orjson

from mock_provider import anthropic_format, embeddings, gemini_format, openai_format
from mock_provider.asgi import Client, Receive, Scope, Send, read_body, send_json
from mock_provider.config import MockConfig
from mock_provider.controls import HEADER_PREFIX, ControlError, Controls, normalize_name, resolve
from mock_provider.dialect import Dialect
from mock_provider.prompt_cache import PromptCache
from mock_provider.reply import Answer, BadRequest, Prompt, compose, split_text
from mock_provider.request_log import RequestLog, is_recorded_header
from mock_provider.streaming import send_stream

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
ErrorBody = Callable[[int, str], bytes]
HeaderPairs = list[tuple[str, str]]
Respond = Callable[[Controls, Client], Awaitable[None]]

GEMINI_PREFIX = "/v1beta/models/"
DEFAULT_MODEL = "mock-model"
_HEALTH = orjson.dumps({"status": "ok"})


def _scan_headers(scope: Scope) -> tuple[dict[str, str], HeaderPairs]:
    """One pass over the request headers: the ones to record, and the ``x-mock-*`` controls."""
    recorded: dict[str, str] = {}
    controls: HeaderPairs = []
    for name, raw in scope["headers"]:
        if not is_recorded_header(name):
            continue
        key = name.decode("latin-1")
        value = raw.decode("latin-1")
        recorded[key] = f"{recorded[key]}, {value}" if key in recorded else value
        if name.startswith(HEADER_PREFIX):
            controls.append((normalize_name(key[len(HEADER_PREFIX) :]), value))
    return recorded, controls


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class MockProvider:
    """An OpenAI/Anthropic/Gemini-compatible fake LLM provider (an ASGI 3 app)."""

    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self.log = RequestLog(config.request_log_size)
        self.prompt_cache = PromptCache(config.prompt_cache_size)
        self._defaults = Controls.defaults(config)
        self._ids = itertools.count(1)
        self._openai = openai_format.OpenAIChat()
        self._anthropic = anthropic_format.AnthropicMessages()
        self._gemini = gemini_format.GeminiGenerate(sse=False)
        self._gemini_sse = gemini_format.GeminiGenerate(sse=True)
        self._routes: dict[tuple[str, str], Handler] = {
            ("POST", "/v1/chat/completions"): self._openai_chat,
            ("POST", "/v1/messages"): self._anthropic_messages,
            ("POST", "/v1/embeddings"): self._embeddings,
            ("GET", "/health"): self._health,
            ("GET", "/_mock/requests"): self._log_get,
            ("DELETE", "/_mock/requests"): self._log_delete,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
            return
        handler = self._routes.get((scope["method"], scope["path"]))
        if handler is None:
            handler = self._gemini_route if scope["path"].startswith(GEMINI_PREFIX) else None
        try:
            if handler is not None:
                await handler(scope, receive, send)
            else:
                await self._not_found(scope, send)
        except asyncio.CancelledError:
            # uvicorn cancels the requests still running when its graceful-shutdown timeout
            # ends (a stalled stream, a long latency): the task ends here anyway, so end it
            # without a traceback; the server closes the connection.
            return

    # -- routes -------------------------------------------------------------------------------

    async def _openai_chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._generate(self._openai, scope, receive, send, model=None, stream=None)

    async def _anthropic_messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._generate(self._anthropic, scope, receive, send, model=None, stream=None)

    async def _gemini_route(self, scope: Scope, receive: Receive, send: Send) -> None:
        model, _, action = scope["path"][len(GEMINI_PREFIX) :].rpartition(":")
        if scope["method"] == "POST" and model:
            if action == "generateContent":
                dialect = self._gemini
                stream = False
            elif action == "streamGenerateContent":
                sse = b"alt=sse" in scope["query_string"].split(b"&")
                dialect = self._gemini_sse if sse else self._gemini
                stream = True
            else:
                dialect = None
            if dialect is not None:
                await self._generate(dialect, scope, receive, send, model=model, stream=stream)
                return
        await self._not_found(scope, send)

    async def _embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        def prepare(body: dict[str, Any]) -> tuple[Prompt, Respond]:
            prompt = Prompt()
            texts = embeddings.embedding_inputs(body, prompt)
            size = embeddings.dimensions(
                body, self.config.embedding_dimensions, self.config.max_embedding_dimensions
            )

            async def respond(controls: Controls, client: Client) -> None:
                encoding = "base64" if body.get("encoding_format") == "base64" else "float"
                model = body.get("model")
                payload = embeddings.response(
                    texts,
                    size,
                    model=model if isinstance(model, str) else DEFAULT_MODEL,
                    encoding=encoding,
                    prompt_tokens=controls.prompt_tokens,
                )
                await send_json(send, 200, payload)

            return prompt, respond

        await self._serve(scope, receive, send, openai_format.error_body, prepare)

    async def _health(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 200, _HEALTH)

    async def _log_get(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 200, self.log.dump())

    async def _log_delete(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.log.clear()
        await send_json(send, 200, _HEALTH)

    async def _not_found(self, scope: Scope, send: Send) -> None:
        path: str = scope["path"]
        error: ErrorBody = openai_format.error_body
        if path.startswith(GEMINI_PREFIX):
            error = gemini_format.error_body
        elif path == "/v1/messages":
            error = anthropic_format.error_body
        await send_json(send, 404, error(404, f"Invalid URL ({scope['method']} {path})"))

    # -- shared steps -------------------------------------------------------------------------

    async def _load(
        self, scope: Scope, receive: Receive, send: Send, error: ErrorBody
    ) -> tuple[dict[str, Any], HeaderPairs] | None:
        """Read, parse and record the JSON body; answer 400 (and return None) when it is bad."""
        raw = await read_body(receive)
        headers, header_controls = _scan_headers(scope)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            message = f"We could not parse the JSON body of your request: {exc}"
            await send_json(send, 400, error(400, message))
            return None
        if not isinstance(body, dict):
            await send_json(send, 400, error(400, "The request body must be a JSON object."))
            return None
        self.log.record(scope, headers, body)
        return body, header_controls

    async def _before_answer(
        self, controls: Controls, error: ErrorBody, send: Send, client: Client
    ) -> bool:
        """Apply ``latency_ms`` and ``status``; False when the request is already answered."""
        if controls.latency_ms and not await client.sleep(controls.latency_ms / 1000):
            return False
        if controls.status is not None:
            extra = None
            if controls.retry_after is not None:
                extra = [(b"retry-after", b"%d" % controls.retry_after)]
            message = f"mock: injected error (status {controls.status})"
            await send_json(send, controls.status, error(controls.status, message), extra)
            return False
        return True

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, error: ErrorBody,
        prepare: Callable[[dict[str, Any]], tuple[Prompt, Respond]],
    ) -> None:  # fmt: skip
        """Every answering route: the body loaded and recorded, its prompt read by `prepare`
        and the controls resolved (a bad one: 400 in `error`'s shape), the injected latency
        and status applied, then the answer `prepare` gave."""
        loaded = await self._load(scope, receive, send, error)
        if loaded is None:
            return
        body, header_controls = loaded
        try:
            prompt, respond = prepare(body)
            controls = resolve(self._defaults, prompt.directives, header_controls)
        except (BadRequest, ControlError) as exc:
            await send_json(send, 400, error(400, str(exc)))
            return
        client = Client(receive)
        try:
            if await self._before_answer(controls, error, send, client):
                await respond(controls, client)
        finally:
            client.close()

    async def _generate(
        self,
        dialect: Dialect,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        model: str | None,
        stream: bool | None,
    ) -> None:
        def prepare(body: dict[str, Any]) -> tuple[Prompt, Respond]:
            prompt = dialect.parse(body)

            async def respond(controls: Controls, client: Client) -> None:
                answer = self._compose(dialect, body, prompt, controls, model)
                if stream if stream is not None else body.get("stream") is True:
                    pieces = split_text(answer.streamed, controls.chunks)
                    await send_stream(dialect.stream(answer, pieces, body), controls, send, client)
                else:
                    await send_json(send, 200, dialect.response(answer, body))

            return prompt, respond

        await self._serve(scope, receive, send, dialect.error, prepare)

    def _compose(
        self, dialect: Dialect, body: dict[str, Any], prompt: Prompt, controls: Controls,
        model: str | None,
    ) -> Answer:  # fmt: skip
        """The answer to `prompt`, its cached prompt tokens counted (the prompt cache)."""
        if model is None:
            requested = body.get("model")
            model = requested if isinstance(requested, str) else DEFAULT_MODEL
        answer = compose(
            prompt,
            controls,
            self.config,
            id=f"{dialect.id_prefix}{next(self._ids)}",
            created=int(time.time()),
            model=model,
        )
        cache = self.prompt_cache.use(
            model, prompt.prefixes if controls.cache else [], answer.prompt_tokens
        )
        if cache.read_tokens or cache.write_tokens:
            answer = replace(
                answer, cached_tokens=cache.read_tokens, cache_write_tokens=cache.write_tokens
            )
        return answer


# Set by `python -m mock_provider --prompt-cache` for its worker processes (the app factory
# takes no arguments there).
PROMPT_CACHE_ENV = "MOCK_PROMPT_CACHE"


def create_app(config: MockConfig | None = None) -> MockProvider:
    """A new mock provider app with its own request log."""
    return MockProvider(config or MockConfig(prompt_cache=os.environ.get(PROMPT_CACHE_ENV) == "1"))
