"""`GET .../agents/{agent_id}/models[/{model}]`: the agent as its one model, in OpenAI's shape.

The OpenAI SDKs' `client.models.list()` / `.retrieve(id)` with
`base_url=.../proxy/v1/agents/{agent_id}` land here. The model's id is the agent's id (the
`model` of a chat request is replaced by the agent's anyway). The caller's key must be valid;
listing costs no quota and takes no rate-limit slot. Not the hot path: the agent's row is read
from Postgres (its status and creation time), the key from its Redis record.
"""

from __future__ import annotations

import orjson

from common.asgi import Receive, Scope, Send
from common.db import UNAVAILABLE_ERRORS
from common.errors import ApiError, ErrorCode
from gateway.live_keys import live_key_owner
from gateway.proxy import canonical_agent_id
from gateway.state import GatewayState

_JSON_HEADERS = [(b"content-type", b"application/json")]


class ModelsEndpoint:
    """ASGI endpoint: `one=False` lists, `one=True` retrieves `{model}`."""

    def __init__(self, *, one: bool) -> None:
        self.one = one

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: GatewayState = scope["state"]["gateway"]
        key_hash = await state.api_keys.key_hash(scope["headers"])
        await live_key_owner(state, key_hash)
        agent_id = canonical_agent_id(scope["path_params"]["agent_id"])
        row = None
        if agent_id is not None:
            try:
                row = await state.db.fetchrow(
                    "SELECT status, created_at FROM agents WHERE id = $1", agent_id
                )
            except UNAVAILABLE_ERRORS:
                # Postgres down: a clear 503 (the key was Redis's), not an unhandled 500.
                raise ApiError(ErrorCode.STORAGE_UNAVAILABLE) from None
        if row is None or row["status"] != "active":
            raise ApiError(ErrorCode.AGENT_NOT_FOUND)
        model = {
            "id": agent_id,
            "object": "model",
            "created": int(row["created_at"].timestamp()),
            "owned_by": "agentlink",
        }
        if self.one:
            if canonical_agent_id(scope["path_params"]["model"]) != agent_id:
                raise ApiError(
                    ErrorCode.RESOURCE_NOT_FOUND, "This agent's only model is its own id."
                )
            body = orjson.dumps(model)
        else:
            body = orjson.dumps({"object": "list", "data": [model]})
        headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
