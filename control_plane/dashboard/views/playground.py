"""The playground: chat with an agent through the real gateway, streamed into the page.

The browser never holds an API key. It posts to this control plane (its session cookie and
CSRF token authenticate it), which calls the gateway with the developer's short-lived
playground key (control_plane/developers/session_keys.py) and relays the gateway's answer
byte for byte: the stream, the status, the error envelope and the `X-RateLimit-*` /
`X-Quota-Remaining` headers. So a playground call is admitted, rate-limited, billed (trials
first) and refused exactly like any call, by the gateway itself.

Without JavaScript the same form posts to the page and gets the whole answer back at once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import httpx
import msgspec
import orjson
from starlette.responses import Response, StreamingResponse

from common.asgi import request_id_of
from common.domain import UserType
from common.errors import ApiError, ErrorCode
from control_plane.dashboard.forms import convert
from control_plane.dashboard.pages import Page, PageContext
from control_plane.developers import service as developers
from control_plane.developers import session_keys
from control_plane.marketplace import service as marketplace
from control_plane.marketplace.schemas import SearchQuery

logger = logging.getLogger("agentlink.playground")

DEVELOPERS = frozenset({UserType.DEVELOPER})
RELAYED_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
                   "x-quota-remaining", "retry-after")  # fmt: skip
MAX_MESSAGES = 50


class Message(msgspec.Struct, forbid_unknown_fields=True):
    role: Literal["user", "assistant"]
    content: Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]


class ChatBody(msgspec.Struct, forbid_unknown_fields=True):
    messages: Annotated[list[Message], msgspec.Meta(min_length=1, max_length=MAX_MESSAGES)]


def _chat_path(agent_id: str) -> str:
    return f"/proxy/v1/agents/{agent_id}/chat"


async def _gateway_request(
    ctx: PageContext, agent_id: str, body: ChatBody, *, stream: bool
) -> httpx.Response:
    """Send the call to the gateway with the playground key; the response is still open."""
    key = await session_keys.current(ctx.state, ctx.user, ctx.dash.settings.playground_key_ttl_s)
    payload = {"messages": msgspec.to_builtins(body.messages), "stream": stream}
    request = ctx.dash.gateway.build_request(
        "POST", _chat_path(agent_id), content=orjson.dumps(payload),
        headers={"X-AgentLink-Key": key.plaintext, "Content-Type": "application/json",
                 "X-Request-ID": request_id_of(ctx.request.scope)},
    )  # fmt: skip
    try:
        return await ctx.dash.gateway.send(request, stream=True)
    except httpx.HTTPError:
        logger.warning("gateway unreachable from the playground", exc_info=True)
        raise ApiError(
            ErrorCode.UPSTREAM_UNAVAILABLE, "The gateway cannot be reached; try again shortly."
        ) from None


def _relayed(upstream: httpx.Response) -> dict[str, str]:
    return {name: upstream.headers[name] for name in RELAYED_HEADERS if name in upstream.headers}


async def chat(ctx: PageContext) -> Response:
    """fetch() endpoint: the gateway's SSE stream, relayed as it arrives."""
    try:
        body: ChatBody = msgspec.convert(ctx.json, type=ChatBody)
    except msgspec.ValidationError as error:
        raise ApiError(ErrorCode.VALIDATION_FAILED, str(error)) from None
    upstream = await _gateway_request(ctx, ctx.path["agent_id"], body, stream=True)
    headers = {**_relayed(upstream), "X-Accel-Buffering": "no"}
    if upstream.status_code != 200 or "text/event-stream" not in upstream.headers.get(
        "content-type", ""
    ):
        content = await upstream.aread()
        await upstream.aclose()
        return Response(
            content, status_code=upstream.status_code, headers=headers,
            media_type=upstream.headers.get("content-type", "application/json"),
        )  # fmt: skip

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()

    return StreamingResponse(relay(), headers=headers, media_type="text/event-stream")


def _history(raw: str) -> list[dict[str, Any]]:
    try:
        history = orjson.loads(raw) if raw else []
    except orjson.JSONDecodeError:
        return []
    return history if isinstance(history, list) else []


async def _page(
    ctx: PageContext, agent_id: str, *, transcript: list[dict[str, Any]], meters: dict[str, str],
    error: str | None = None, status: int = 200,
) -> Response:  # fmt: skip
    agent = await marketplace.agent_detail(ctx.state, agent_id)
    profile = await developers.profile(ctx.state, ctx.user)
    trials = await developers.trials(ctx.state, ctx.user)
    used = next((item.used for item in trials.agents if item.agent_id == agent.id), 0)
    return ctx.render(
        "playground/chat.html", agent=agent, profile=profile, transcript=transcript,
        history=orjson.dumps(transcript).decode(), meters=meters, error=error,
        trials_left=max(0, trials.trial_calls - used), trial_calls=trials.trial_calls,
        status=status,
    )  # fmt: skip


async def chat_page(ctx: PageContext) -> Response:
    return await _page(ctx, ctx.path["agent_id"], transcript=[], meters={})


async def chat_without_script(ctx: PageContext) -> Response:
    """The form's plain POST: one whole (non-streamed) answer, the page rendered again."""
    agent_id = ctx.path["agent_id"]
    transcript = _history(ctx.form["history"])
    text = ctx.form["message"].strip()
    if not text:
        return await _page(ctx, agent_id, transcript=transcript, meters={},
                           error="Write a message first.", status=400)  # fmt: skip
    transcript.append({"role": "user", "content": text})
    try:
        body: ChatBody = msgspec.convert({"messages": transcript}, type=ChatBody)
    except msgspec.ValidationError:
        error = "The conversation is too long; start a new one."
        return await _page(ctx, agent_id, transcript=[], meters={}, error=error, status=400)
    upstream = await _gateway_request(ctx, agent_id, body, stream=False)
    try:
        raw = await upstream.aread()
    finally:
        await upstream.aclose()
    meters = _relayed(upstream)
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        answer = {}
    if upstream.status_code != 200:
        message = (answer.get("error") or {}).get("message") if isinstance(answer, dict) else None
        transcript.pop()
        return await _page(ctx, agent_id, transcript=transcript, meters=meters,
                           error=message or "The gateway refused the call.",
                           status=upstream.status_code)  # fmt: skip
    content = answer["choices"][0]["message"].get("content") or ""
    transcript.append({"role": "assistant", "content": content})
    return await _page(ctx, agent_id, transcript=transcript, meters=meters)


async def pick_agent(ctx: PageContext) -> Response:
    text = ctx.query.get("q", "").strip()[:200]
    query: SearchQuery = convert({"limit": 24, **({"q": text} if text else {})}, SearchQuery)
    page = await marketplace.search(ctx.state, query)
    return ctx.render("playground/pick.html", agents=page.agents, q=text)


PAGES = [
    Page("GET", "/playground", pick_agent, users=DEVELOPERS),
    Page("GET", "/playground/{agent_id}", chat_page, users=DEVELOPERS),
    Page("POST", "/playground/{agent_id}", chat_without_script, users=DEVELOPERS),
    Page("POST", "/playground/{agent_id}/chat", chat, users=DEVELOPERS, api=True),
]
