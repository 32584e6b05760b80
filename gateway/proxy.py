"""The hot path: one call to an agent, top to bottom as DESIGN.md lays it out.

1. key from `X-AgentLink-Key` (or `Authorization: Bearer`), shape check, SHA-256
2. body parsed and validated (before admission: a bad body costs nothing)
3. admission: one Lua call (key, user, agent, rate window, trial, quota reservation)
4. agent config from the in-process cache, by the version admission returned; for an agent
   with a knowledge base, the passages that answer the last user message (gateway/knowledge.py)
5. upstream request built: creator prompt first, then the knowledge, developer messages after
6. provider call behind its circuit breaker; streams are relayed byte for byte
7. commit: one Lua call keeps or gives back the reservation and appends the usage event,
   retried through a Redis blip until the reservation's deadline (gateway/settlement.py)

The answer, guarded, reaches the client through the edge of the dialect it speaks
(gateway/edge.py): OpenAI's chat completions here, an MCP tool result on `/mcp`. Every
endpoint that calls an agent goes through `call_agent`: one pipeline, however it is asked.

Billing (gateway/call_result.py): billable only when the provider answered 2xx and the
answer (or stream) completed. A client that goes away after the provider answered 2xx is
billed, logged as cancelled; one that goes away before (JSON or stream) is not billed, is
logged as cancelled, and its provider request is cancelled (gateway/disconnect.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import orjson

from common.asgi import ClientDisconnected, Receive, Scope, Send, read_body
from common.domain import AgentConfig, ModelTarget
from common.errors import ApiError, ErrorCode
from common.ids import uuid4_hex
from crypto.api_keys import shard_of_key_hash
from gateway.admission import Admission
from gateway.agent_configs import CachedAgent
from gateway.call_record import hot_record
from gateway.call_result import NOT_ANSWERED, CallResult
from gateway.call_telemetry import CallTelemetry
from gateway.chat_request import (
    ChatRequest,
    build_upstream_payload,
    parse_chat_request,
    with_cache_mark,
)
from gateway.disconnect import LazyDisconnectWatch
from gateway.drain import ShuttingDown
from gateway.edge import Answer, Edge, StreamSink
from gateway.knowledge import Retrieved
from gateway.leak_guard import LeakGuard, SseLeakFilter, withheld_object
from gateway.openai_edge import OpenAIEdge
from gateway.provider_call import GuardedProvider, OpenStream
from gateway.providers.base import Usage
from gateway.providers.errors import (
    ProviderError,
    ProviderMisconfigured,
    ProviderTimeout,
    ProviderUnavailable,
)
from gateway.providers.openai_wire import ChatCompletionRequest
from gateway.state import GatewayState

logger = logging.getLogger("agentlink.access")
EdgeT = TypeVar("EdgeT", bound=Edge)


@hot_record
class Call:
    """One admitted call on its way to one provider (the agent's model or a fallback)."""

    state: GatewayState
    provider: GuardedProvider
    model: str
    payload: ChatCompletionRequest
    admission: Admission
    request_id: str
    trace_headers: dict[str, str]  # W3C trace context for the provider request
    shield: Shield | None  # the prompt-leak guard and the version's canary; None when off
    include_usage: bool = False  # the streaming client asked for the usage chunk


@hot_record
class Shield:
    guard: LeakGuard
    canary: str


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical_agent_id(raw: str) -> str | None:
    """Agent ids are UUIDs; one canonical spelling, so Redis keys and the encryption's
    associated data always match what the control plane wrote. None for anything else,
    which is answered 404 before any lookup (and never logged or cached raw)."""
    if _CANONICAL_UUID.fullmatch(raw):
        return raw  # the common case, already canonical: skip the parse
    if len(raw) > 45:  # the longest spelling uuid.UUID takes, "urn:uuid:" + 36
        return None
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return None


async def identify(
    state: GatewayState, headers: list[tuple[bytes, bytes]], agent_id: str | None
) -> tuple[str, str]:
    """The key's hash and the agent id, once both have the shape they must have: 401 (a forged
    key included, gateway/api_keys.py), then 404, before any lookup."""
    key_hash = await state.api_keys.key_hash(headers)
    if agent_id is None:
        raise ApiError(ErrorCode.AGENT_NOT_FOUND)
    return key_hash, agent_id


class AgentEndpoint(Generic[EdgeT]):
    """An ASGI endpoint that calls an agent in one dialect: its body parser (`parse`), its
    edge (`edge`), how it answers a call refused before the answer began (`refused`)."""

    def __init__(self, route: str) -> None:
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: GatewayState = scope["state"]["gateway"]
        agent_id = canonical_agent_id(scope["path_params"]["agent_id"])
        telemetry = CallTelemetry(state, self.route, scope, agent_id)
        edge = self.edge(receive, send)
        try:
            key_hash, agent_id = await identify(state, scope["headers"], agent_id)
            chat = self.parse(await read_body(scope, receive, state.settings.max_body_bytes))
            await call_agent(state, telemetry, key_hash, agent_id, chat, edge=edge)
        except ApiError as error:
            telemetry.refused(error)
            await self.refused(error, edge, send, telemetry.request_id)
        except ClientDisconnected:
            telemetry.client_left_early()
            raise
        finally:
            telemetry.finish()

    def parse(self, body: bytes) -> ChatRequest:
        raise NotImplementedError

    def edge(self, receive: Receive, send: Send) -> EdgeT:
        raise NotImplementedError

    async def refused(self, error: ApiError, edge: EdgeT, send: Send, request_id: str) -> None:
        """By default the error envelope middleware answers (common/asgi.py)."""
        raise error


class ChatEndpoint(AgentEndpoint[OpenAIEdge]):
    """ASGI endpoint for `POST /proxy/v1/agents/{agent_id}/chat[/completions]`."""

    def parse(self, body: bytes) -> ChatRequest:
        return parse_chat_request(body)

    def edge(self, receive: Receive, send: Send) -> OpenAIEdge:
        return OpenAIEdge(receive, send)


async def call_agent(
    state: GatewayState,
    telemetry: CallTelemetry,
    key_hash: str,
    agent_id: str,
    chat: ChatRequest,
    *,
    edge: Edge,
) -> None:
    """Steps 3 to 7 for a validated request, whatever dialect the client speaks (`edge`):
    every endpoint that calls an agent comes through here. Raises the ApiError of a call
    refused or failed before its answer began; the telemetry says how it ended."""
    telemetry.stream = chat.stream
    state.drain.refuse_after_cut()
    admission = await state.admitter.admit(
        key_hash, shard_of_key_hash(key_hash), agent_id, uuid4_hex(),
        request_id=telemetry.request_id,
    )  # fmt: skip
    telemetry.admitted()
    telemetry.ended(await _serve(state, admission, chat, telemetry, edge))


async def _serve(
    state: GatewayState,
    admission: Admission,
    chat: ChatRequest,
    telemetry: CallTelemetry,
    edge: Edge,
) -> CallResult:
    """Steps 4 to 7 for an admitted call, committed exactly once however it ends. The
    call is in flight for the drain until its commit returned, which may be after the call
    ended (gateway/settlement.py): a shutdown waits for it."""
    in_flight = state.drain.admitted_call()
    result = NOT_ANSWERED
    try:
        cached = await state.agent_configs.get(admission.agent_id, admission.agent_version)
        config = cached.config
        # Two numbers already in hand decide it: plain agents pay nothing here.
        knowledge = (
            await state.knowledge.retrieve(
                admission.agent_id, admission.knowledge_version, config.knowledge, chat.messages
            )
            if admission.knowledge_version and config.knowledge.enabled
            else None
        )
        payload, shield = _upstream_request(cached, chat, knowledge)
        run: Callable[[Call], Awaitable[CallResult]] = (
            (lambda call: _relay_stream(call, edge))
            if chat.stream
            else (lambda call: _complete(call, edge))
        )
        result = await _call_with_fallbacks(
            state, config, payload, admission=admission, telemetry=telemetry, run=run,
            shield=shield, include_usage=chat.include_usage,
        )  # fmt: skip
        return result
    except ProviderError as error:
        result = CallResult.failed(error)
        raise ApiError(error.code, error.message) from None
    except ShuttingDown:
        result = CallResult.cut_at_shutdown(status_sent=False)
        raise
    finally:
        await _commit(state, admission, result, telemetry, in_flight)


def _upstream_request(
    cached: CachedAgent, chat: ChatRequest, knowledge: Retrieved | None
) -> tuple[ChatCompletionRequest, Shield | None]:
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
    # The version's canary frames the prompt: seeing it in the answer is a sure leak.
    payload["messages"][0]["content"] = cached.planted_prompt
    return payload, Shield(guard, cached.canary)


# A call whose answer (JSON) or stream takes longer than this gets a task watching for the
# client leaving; one over sooner asks the server whether it left (gateway/disconnect.py).
# Most mocks and caches answer within it; a model's answer rarely does.
_WATCH_AFTER_S = 0.5

# A failure that says nothing about the request itself: another provider or model may answer.
# (ProviderRejectedRequest would fail the same way anywhere; BreakerOpen is a ProviderUnavailable.)
_FALLBACK_ERRORS = (ProviderUnavailable, ProviderTimeout, ProviderMisconfigured)
# The providers whose prompt cache needs the prompt marked (an agent's `prompt_cache`);
# OpenAI and Gemini cache a repeated prefix by themselves (and OpenAI-compatible servers
# might refuse the mark).
_CACHE_MARK_PROVIDERS = frozenset({"anthropic"})


async def _call_with_fallbacks(
    state: GatewayState,
    config: AgentConfig,
    payload: ChatCompletionRequest,
    *,
    admission: Admission,
    telemetry: CallTelemetry,
    run: Callable[[Call], Awaitable[CallResult]],
    shield: Shield | None,
    include_usage: bool = False,
) -> CallResult:
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
            trace_headers = telemetry.provider_trace_headers(
                target.provider, target.model, admission.agent_id, admission.agent_version
            )
            upstream = payload if index == 0 else {**payload, "model": target.model}
            if config.prompt_cache and target.provider in _CACHE_MARK_PROVIDERS:
                upstream = with_cache_mark(upstream)
            call = Call(state, provider, target.model, upstream, admission,
                        telemetry.request_id, trace_headers, shield, include_usage)  # fmt: skip
            try:
                result = await run(call)
            except ProviderError as error:
                telemetry.provider_ended(None, error.code.value)
                raise
            except BaseException:
                telemetry.provider_ended(None)
                raise
            telemetry.provider_ended(result)
            return result
        except _FALLBACK_ERRORS as error:
            if index == len(targets) - 1:
                raise
            logger.warning(
                "provider failed, falling back",
                extra={
                    "request_id": telemetry.request_id,
                    "provider": target.provider,
                    "error_code": error.code.value,
                },
            )
    raise AssertionError("unreachable: the last target's error is raised")  # pragma: no cover


async def _complete(call: Call, edge: Edge) -> CallResult:
    watch = LazyDisconnectWatch(edge.receive, _WATCH_AFTER_S, call.state.timers)
    try:
        completion = await call.provider.complete(
            call.payload, model=call.model, headers=call.trace_headers
        )
    except asyncio.CancelledError:
        if not watch.absorb_cancellation():
            raise
        # The client left before the provider answered: the same rule as a stream.
        return CallResult.client_left(provider_answered=False)
    finally:
        watch.stop()
    if watch.left_meanwhile():
        return CallResult.client_left(provider_answered=False)
    result = CallResult.answered(completion.usage)
    # Parsed once (by the adapter, or here): the guard and the edge read it.
    answer = (
        Answer.of(completion.body)
        if completion.data is None
        else Answer(completion.body, completion.data)
    )
    shield = call.shield
    if shield is not None and shield.guard.check_answer(answer.data, shield.canary):
        withheld = withheld_object(answer.data)
        answer = Answer(orjson.dumps(withheld), withheld)
        result = _blocked(call.state, result)
    await edge.answer(call, answer, billed=result.billable)
    return result


def _blocked(state: GatewayState, result: CallResult) -> CallResult:
    state.metrics.leaks_blocked.inc()
    return result.withheld()


async def _relay_stream(call: Call, edge: Edge) -> CallResult:
    watch = LazyDisconnectWatch(edge.receive, _WATCH_AFTER_S, call.state.timers)
    drain = call.state.drain.watch_stream()
    sink: StreamSink | None = None
    leak_filter = (
        SseLeakFilter(call.shield.guard.scanner(call.shield.canary)) if call.shield else None
    )
    broken: ProviderError | ShuttingDown | None = None
    closed = False
    try:
        async with call.provider.stream(
            call.payload, model=call.model, headers=call.trace_headers
        ) as opened:
            if watch.left_meanwhile():  # gone before the provider answered: not billable
                return CallResult.client_left(provider_answered=False)
            sink = await edge.open_stream(call)
            usage = await _relay_chunks(opened, leak_filter, sink)
            # Complete: the client gets the stream's end now, before the provider's
            # connection is handed back and the attempt recorded (the context exits). The
            # watches stop first: nothing the client does now changes how the call ends.
            watch.stop()
            drain.stop()
            if watch.left_meanwhile():  # gone after the 200, before a watch was there to see it
                return CallResult.client_left(provider_answered=True)
            await sink.close(None, withheld=leak_filter is not None and leak_filter.leaked)
            closed = True
        result = CallResult.answered(usage)
        if leak_filter is not None and leak_filter.leaked:
            result = _blocked(call.state, result)
    except asyncio.CancelledError:
        # Each watch takes back its own cancellation (both may have come at once).
        client_left, cut = watch.absorb_cancellation(), drain.absorb_cancellation()
        if client_left:
            # Billable only if the provider had answered 2xx (DESIGN.md).
            return CallResult.client_left(provider_answered=sink is not None)
        if not cut:
            raise
        # Still open at the drain deadline (gateway/drain.py): incomplete, so not billable.
        if sink is None:
            raise ShuttingDown from None
        broken = ShuttingDown()
        result = CallResult.cut_at_shutdown(status_sent=True)
    except ProviderError as error:
        if sink is None:
            raise
        broken = error
        result = CallResult.failed(error, status_sent=True)
    finally:
        watch.stop()
        drain.stop()
    assert sink is not None  # set before anything that returns here without raising
    if not closed:
        await sink.close(broken, withheld=leak_filter is not None and leak_filter.leaked)
    return result


async def _relay_chunks(
    opened: OpenStream, leak_filter: SseLeakFilter | None, sink: StreamSink
) -> Usage:
    """Relay the provider's SSE bytes; with the leak guard on, through its filter, which
    holds back only the few words that could still turn into a quote of the prompt. A
    provider that breaks off still gets what the guard held (if clean) released first, so
    the client has everything the provider did send. Returns the usage the stream ended
    with."""
    first = True
    usage: Usage | None = None
    try:
        async for chunk in opened.chunks:
            if isinstance(chunk, Usage):
                usage = chunk  # the last item: the answer completed
                continue
            if first:
                first = False
                opened.first_chunk()
            out = leak_filter.feed(chunk) if leak_filter is not None else chunk
            if out:
                await sink.send(out, withheld=leak_filter is not None and leak_filter.leaked)
        if usage is None:
            raise ProviderUnavailable("The model provider ended the stream early.")
    except ProviderError:
        await _release_held(leak_filter, sink)
        raise
    await _release_held(leak_filter, sink)
    return usage


async def _release_held(leak_filter: SseLeakFilter | None, sink: StreamSink) -> None:
    if leak_filter is not None and (rest := leak_filter.finish()):
        await sink.send(rest, withheld=leak_filter.leaked)


async def _commit(
    state: GatewayState,
    admission: Admission,
    result: CallResult,
    telemetry: CallTelemetry,
    in_flight: Callable[[], None],
) -> None:
    await state.settler.settle(
        admission, result,
        request_id=telemetry.request_id,
        latency_ms=int((time.perf_counter() - telemetry.started) * 1000),
        # The reservation lives this long from admission, which came after `started`.
        deadline=telemetry.started + state.settings.reservation_s,
        returned=in_flight,
    )  # fmt: skip
