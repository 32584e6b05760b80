"""The hot path: one call to an agent, top to bottom as DESIGN.md lays it out.

1. key from `X-AgentLink-Key` (or `Authorization: Bearer`), shape check, SHA-256
2. body parsed and validated (before admission: a bad body costs nothing)
3. admission: one Lua call (key, user, agent, rate window, trial, quota reservation)
4. agent config from the in-process cache, by the version admission returned; for an agent
   with a knowledge base, the passages that answer the last user message (gateway/knowledge.py)
5. upstream request built: creator prompt first, then the knowledge, developer messages after
6. provider call behind its circuit breaker; streams are relayed byte for byte
7. commit: one Lua call keeps or gives back the reservation and appends the usage event

Billing: billable only when the provider answered 2xx and the answer (or stream) completed.
A client that goes away after the provider answered 2xx is billed, logged as cancelled.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from common.asgi import Receive, Scope, Send, read_body
from common.domain import AgentConfig, ModelTarget
from common.errors import ApiError, ErrorCode, error_body
from crypto.api_keys import hash_api_key, is_well_formed_api_key, shard_of_key_hash
from gateway.admission import Admission
from gateway.agent_configs import CachedAgent
from gateway.chat_request import ChatRequest, build_upstream_payload, parse_chat_request
from gateway.knowledge import Retrieved
from gateway.leak_guard import (
    LeakGuard,
    SseLeakFilter,
    new_canary,
    plant_canary,
    withheld_completion,
)
from gateway.providers.base import ChatProvider, Usage
from gateway.providers.errors import (
    BreakerOpen,
    ProviderError,
    ProviderMisconfigured,
    ProviderTimeout,
    ProviderUnavailable,
)
from gateway.state import GatewayState
from gateway.tracing import CallSpans, trace_headers_from

logger = logging.getLogger("agentlink.access")

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass(slots=True)
class Call:
    """One admitted call on its way to a provider."""

    state: GatewayState
    provider: ChatProvider
    model: str
    payload: dict[str, Any]
    admission: Admission
    request_id: str
    trace_headers: dict[str, str]  # W3C trace context for the provider request
    shield: Shield | None  # the prompt-leak guard and this call's canary; None when off


@dataclass(frozen=True, slots=True)
class Shield:
    guard: LeakGuard
    canary: str


@dataclass(slots=True)
class Outcome:
    """How a call ended, for the commit and the access log."""

    billable: bool = False
    status: str = "error"  # success | error | timeout | blocked | cancelled
    http_status: int = 500
    error_code: str = ""
    usage: Usage | None = None


def canonical_agent_id(raw: str) -> str:
    """Agent ids are UUIDs; one canonical spelling, so Redis keys and the encryption's
    associated data always match what the control plane wrote."""
    if len(raw) == 36 and raw.islower():
        return raw  # the common case, already canonical: skip the parse
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return raw  # admission answers 404 for it (negatively cached, no Postgres query)


def api_key_from(headers: list[tuple[bytes, bytes]]) -> str:
    key = b""
    for name, value in headers:
        if name == b"x-agentlink-key":
            key = value
            break
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            key = value[7:].strip()
    text = key.decode("latin-1")
    if not is_well_formed_api_key(text):
        raise ApiError(ErrorCode.INVALID_API_KEY)
    return text


class ChatEndpoint:
    """ASGI endpoint for `POST /proxy/v1/agents/{agent_id}/chat[/completions]`."""

    def __init__(self, route: str) -> None:
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: GatewayState = scope["state"]["gateway"]
        started = time.perf_counter()
        request_id: str = scope["state"]["request_id"]
        agent_id = canonical_agent_id(scope["path_params"]["agent_id"])
        metrics = state.metrics
        metrics.in_flight.inc()
        outcome = Outcome()
        stream = False
        client_trace = trace_headers_from(scope["headers"])
        tracing = state.tracing
        spans = (
            tracing.start_call(self.route, client_trace, request_id) if tracing.enabled else None
        )
        try:
            key = api_key_from(scope["headers"])
            key_hash = hash_api_key(key)
            body = await read_body(scope, receive, state.settings.max_body_bytes)
            chat = parse_chat_request(body)
            stream = chat.stream
            admission = await state.admitter.admit(
                key_hash, shard_of_key_hash(key_hash), agent_id, uuid.uuid4().hex
            )
            metrics.admissions.labels("ok").inc()
            try:
                cached = await state.agent_configs.get(agent_id, admission.agent_version)
                config = cached.config
                # Two numbers already in hand decide it: plain agents pay nothing here.
                knowledge = (
                    await state.knowledge.retrieve(
                        agent_id, admission.knowledge_version, config.knowledge, chat.messages
                    )
                    if admission.knowledge_version and config.knowledge.enabled
                    else None
                )
                payload, shield = _upstream_request(cached, chat, knowledge)
                run = (
                    functools.partial(_relay_stream, outcome=outcome, receive=receive, send=send)
                    if chat.stream
                    else functools.partial(_complete, outcome=outcome, send=send)
                )
                await _call_with_fallbacks(
                    state, config, payload, admission=admission, request_id=request_id,
                    run=run, trace=(spans, client_trace), outcome=outcome, shield=shield,
                )  # fmt: skip
            except ProviderError as error:
                outcome.status = "timeout" if isinstance(error, ProviderTimeout) else "error"
                outcome.error_code = error.code.value
                raise ApiError(error.code, error.message) from None
            finally:
                await _commit(state, admission, outcome, started, request_id)
        except ApiError as error:
            outcome.http_status = error.status
            outcome.error_code = error.code.value
            if error.code in (ErrorCode.RATE_LIMITED, ErrorCode.QUOTA_EXHAUSTED,
                              ErrorCode.INVALID_API_KEY, ErrorCode.AGENT_NOT_FOUND,
                              ErrorCode.FORBIDDEN):  # fmt: skip
                metrics.admissions.labels(error.code.name.lower()).inc()
            raise
        finally:
            metrics.in_flight.dec()
            if spans is not None:
                tracing.end_call(spans, status=outcome.http_status, error_code=outcome.error_code)
            elapsed = time.perf_counter() - started
            metrics.requests.labels(self.route, f"{outcome.http_status // 100}xx").inc()
            metrics.request_seconds.labels(self.route, "true" if stream else "false").observe(
                elapsed
            )
            if state.settings.access_log:
                logger.info(
                    "call",
                    extra={
                        "request_id": request_id,
                        "route": self.route,
                        "agent_id": agent_id,
                        "status": outcome.http_status,
                        "latency_ms": round(elapsed * 1000, 2),
                        "billable": outcome.billable,
                        "error_code": outcome.error_code or None,
                    },
                )


def _upstream_request(
    cached: CachedAgent, chat: ChatRequest, knowledge: Retrieved | None
) -> tuple[dict[str, Any], Shield | None]:
    config = cached.config
    payload = build_upstream_payload(
        config, chat, knowledge=knowledge.message if knowledge else None
    )
    guard = cached.guard
    if knowledge is not None and config.knowledge.leak_guard:
        # The creator opted in: the passages are guarded like the prompt (an index per call).
        guarded = [config.system_prompt] if config.leak_guard else []
        guard = LeakGuard("\n\n".join([*guarded, *knowledge.passages]))
    if guard is None:
        return payload, None
    shield = Shield(guard, new_canary())
    # A per-call canary in the prompt: seeing it in the answer is a sure leak.
    payload["messages"][0]["content"] = plant_canary(cached.config.system_prompt, shield.canary)
    return payload, shield


# A failure that says nothing about the request itself: another provider or model may answer.
# (ProviderRejectedRequest would fail the same way anywhere; BreakerOpen is a ProviderUnavailable.)
_FALLBACK_ERRORS = (ProviderUnavailable, ProviderTimeout, ProviderMisconfigured)


async def _call_with_fallbacks(
    state: GatewayState,
    config: AgentConfig,
    payload: dict[str, Any],
    *,
    admission: Admission,
    request_id: str,
    run: Callable[[Call], Awaitable[None]],
    trace: tuple[CallSpans | None, dict[str, str]],
    outcome: Outcome,
    shield: Shield | None,
) -> None:
    """Call the agent's model; if that fails before anything reached the client, each of its
    fallbacks in order (own provider, breaker and model). `run` raises a ProviderError only
    before the response started (a stream broken later is settled in-band), so a fallback
    never follows a byte sent to the client. One admission, one commit: billed once."""
    targets = (ModelTarget(config.provider, config.model), *config.fallbacks)
    for index, target in enumerate(targets):
        try:
            provider = state.providers.get(target.provider)
            if provider is None:
                raise ProviderUnavailable(f"Provider {target.provider} is not configured.")
            upstream = payload if index == 0 else {**payload, "model": target.model}
            spans, trace_headers = trace
            if spans is not None:
                trace_headers = state.tracing.start_provider_call(
                    spans, target.provider, target.model, admission.agent_id,
                    admission.agent_version,
                )  # fmt: skip
            call = Call(state, provider, target.model, upstream, admission, request_id,
                        trace_headers, shield)  # fmt: skip
            try:
                await run(call)
            finally:
                if spans is not None:
                    _end_provider_span(state, spans, outcome)
            return
        except _FALLBACK_ERRORS as error:
            if index == len(targets) - 1:
                raise
            logger.warning(
                "provider failed, falling back",
                extra={
                    "request_id": request_id,
                    "provider": target.provider,
                    "error_code": error.code.value,
                },
            )


def _end_provider_span(state: GatewayState, spans: CallSpans, outcome: Outcome) -> None:
    usage = outcome.usage or Usage()
    error = None if outcome.status == "success" else (outcome.error_code or outcome.status)
    state.tracing.end_provider_call(
        spans,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        finish_reasons=usage.finish_reasons,
        error_type=error,
    )


def _breaker_call_allowed(state: GatewayState, provider: ChatProvider) -> int:
    """Ask the provider's breaker; returns the breaker generation the call belongs to."""
    breaker = state.breakers[provider.name]
    if not breaker.allow():
        raise BreakerOpen(f"The {provider.name} provider is failing; try again shortly.")
    return breaker.generation


def _record(
    state: GatewayState, provider: ChatProvider, error: BaseException | None, generation: int
) -> None:
    failed = isinstance(error, ProviderError) and error.counts_as_failure
    if isinstance(error, TimeoutError):
        failed = True
    state.breakers[provider.name].record(success=not failed, generation=generation)


async def _complete(call: Call, outcome: Outcome, send: Send) -> None:
    state, provider = call.state, call.provider
    generation = _breaker_call_allowed(state, provider)
    sent_at = time.perf_counter()
    error: BaseException | None = None
    try:
        async with asyncio.timeout(state.settings.upstream_timeout_s):
            completion = await provider.complete(call.payload, headers=call.trace_headers)
    except TimeoutError:
        error = ProviderTimeout("The model provider timed out.")
        raise error from None
    except BaseException as caught:
        error = caught
        raise
    finally:
        _record(state, provider, error, generation)
    state.metrics.provider_seconds.labels(provider.name, call.model).observe(
        time.perf_counter() - sent_at
    )
    outcome.billable, outcome.status, outcome.http_status = True, "success", 200
    outcome.usage = completion.usage
    body = completion.body
    shield = call.shield
    if shield is not None and shield.guard.check_completion(body, shield.canary):
        body = withheld_completion(body)
        _blocked(state, outcome)
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    headers += call.admission.headers()
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _blocked(state: GatewayState, outcome: Outcome) -> None:
    """The answer repeated the creator's prompt and was withheld. Not billable: the
    developer got no answer (and a false positive must not cost an innocent caller)."""
    outcome.billable, outcome.status, outcome.error_code = False, "blocked", "prompt_leak"
    state.metrics.leaks_blocked.inc()


class _DisconnectWatch:
    """Cancels the relaying task when the client goes away, so a stalled provider read is
    abandoned at once instead of after the idle timeout."""

    def __init__(self, receive: Receive) -> None:
        self.client_gone = False
        self._finished = False
        self._relay = asyncio.current_task()
        self._watcher = asyncio.create_task(_wait_for_disconnect(receive))
        self._watcher.add_done_callback(self._on_disconnect)

    def _on_disconnect(self, _: asyncio.Task[None]) -> None:
        if not self._finished and self._relay is not None:
            self.client_gone = True
            self._relay.cancel()

    def absorb_cancellation(self) -> bool:
        """True if a CancelledError was ours (client gone): the task then carries on."""
        if not self.client_gone or self._relay is None:
            return False
        self._relay.uncancel()
        return True

    def stop(self) -> None:
        self._finished = True
        self._watcher.cancel()


async def _relay_stream(call: Call, outcome: Outcome, receive: Receive, send: Send) -> None:
    state, provider = call.state, call.provider
    generation = _breaker_call_allowed(state, provider)
    sent_at = time.perf_counter()
    watch = _DisconnectWatch(receive)
    error: ProviderError | None = None
    response_started = False
    try:
        async with asyncio.timeout(state.settings.stream_first_byte_timeout_s):
            opened = provider.stream(call.payload, headers=call.trace_headers)
            chat_stream = await opened.__aenter__()
        try:
            headers = [*_SSE_HEADERS, *call.admission.headers()]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            response_started = True
            leaked = await _relay_chunks(call, chat_stream.chunks, send, sent_at)
        finally:
            await opened.__aexit__(None, None, None)
        outcome.billable, outcome.status, outcome.http_status = True, "success", 200
        outcome.usage = chat_stream.usage
        if leaked:
            _blocked(state, outcome)
    except asyncio.CancelledError:
        if not watch.absorb_cancellation():
            raise
        # The client left. Billable only if the provider had answered 2xx (DESIGN.md).
        outcome.billable = response_started
        outcome.status, outcome.http_status = "cancelled", 499
        outcome.error_code = "client_disconnected"
    except (ProviderError, TimeoutError) as caught:
        error = (
            caught
            if isinstance(caught, ProviderError)
            else ProviderTimeout("The model provider timed out.")
        )
        if not response_started:
            raise error from None
        _stream_failed(outcome, error)
    finally:
        watch.stop()
        _record(state, provider, error, generation)
        state.metrics.provider_seconds.labels(provider.name, call.model).observe(
            time.perf_counter() - sent_at
        )
    if outcome.status == "cancelled":
        return
    if error is not None:
        # The stream broke after we answered 200: tell the client in-band, then end.
        event = b"data: " + error_body(error.code, error.message, call.request_id) + b"\n\n"
        await send({"type": "http.response.body", "body": event, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _relay_chunks(
    call: Call, chunks: AsyncIterator[bytes], send: Send, sent_at: float
) -> bool:
    """Relay the provider's SSE bytes; with the leak guard on, through its filter, which
    holds back only the few words that could still turn into a quote of the prompt.
    Returns whether the answer was withheld."""
    first = True
    sse = SseLeakFilter(call.shield.guard.scanner(call.shield.canary)) if call.shield else None
    try:
        async for chunk in chunks:
            if first:
                first = False
                call.state.metrics.time_to_first_token.labels(
                    call.provider.name, call.model
                ).observe(time.perf_counter() - sent_at)
            out = chunk if sse is None else sse.feed(chunk)
            if out:
                await send({"type": "http.response.body", "body": out, "more_body": True})
    except ProviderError:
        # The provider broke off: release what the guard still held (if clean) before the
        # in-band error, so the client has everything the provider did send.
        if sse is not None and (rest := sse.finish()):
            await send({"type": "http.response.body", "body": rest, "more_body": True})
        raise
    if sse is None:
        return False
    if rest := sse.finish():
        await send({"type": "http.response.body", "body": rest, "more_body": True})
    return sse.leaked


def _stream_failed(outcome: Outcome, error: ProviderError) -> None:
    outcome.billable = False
    outcome.status = "timeout" if isinstance(error, ProviderTimeout) else "error"
    outcome.http_status = 200  # the status line went out before the failure
    outcome.error_code = error.code.value


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _commit(
    state: GatewayState, admission: Admission, outcome: Outcome, started: float, request_id: str
) -> None:
    usage = outcome.usage or Usage()
    try:
        await asyncio.shield(
            state.admitter.commit(
                admission,
                billable=outcome.billable,
                status=outcome.status,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                latency_ms=int((time.perf_counter() - started) * 1000),
                error_code=outcome.error_code,
                request_id=request_id,
            )
        )
    except Exception:
        # Redis is down: the reservation stays and the reaper gives it back after its
        # deadline. The call goes unbilled rather than billed twice.
        state.metrics.commit_failures.inc()
        logger.exception("commit failed", extra={"request_id": request_id})
