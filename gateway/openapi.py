"""The gateway's OpenAPI 3.1 document, served at GET /openapi.json.

The hot path validates bodies by hand (gateway/chat_request.py, gateway/parameters.py,
gateway/dialects/anthropic_request.py), not through schema types, so this document is
written out here and kept to what those accept and answer: each body field with the type and
bounds its parser enforces, and every status a route can answer. Fields the parsers take
with provider-specific shapes we do not check (`response_format` beyond its type, a tool's
JSON Schema) are described by their common form. tests/gateway/test_api_conformance.py runs
schemathesis against a real gateway with this document: generated valid requests must be
accepted and every answer must be a documented status.

`/mcp` is JSON-RPC (Streamable HTTP), described by the MCP specification rather than here.
"""

from __future__ import annotations

from typing import Any

from common.errors import error_envelope_schema
from common.validation import INT64_MAX, INT64_MIN
from gateway.chat_request import MAX_MESSAGES

_REF = "#/components/schemas/{}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name)}


def _object(
    properties: dict[str, Any], required: tuple[str, ...] = (), *, closed: bool = True
) -> dict[str, Any]:
    """An object schema; `closed`: any other field is refused, as the parsers do (40002)."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


def _array(items: dict[str, Any], max_items: int, min_items: int = 0) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "maxItems": max_items, "items": items}
    if min_items:
        schema["minItems"] = min_items
    return schema


_TEXT = {"type": "string", "maxLength": 20_000}
_STOP = {"anyOf": [_TEXT, _array(_TEXT, 4)]}
_TOKENS = {"type": "integer", "minimum": 1, "maximum": INT64_MAX}
_TOOL_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
_JSON_SCHEMA = _object({"type": {"const": "object"}}, ("type",), closed=False)
_TEXT_PART = _object({"type": {"const": "text"}, "text": _TEXT}, ("type", "text"))

_CHAT_MESSAGE = _object(
    {
        "role": {"enum": ["system", "developer", "user", "assistant"]},
        "content": {"anyOf": [_TEXT, _array(_ref("TextPart"), 16, min_items=1)]},
        "name": {"type": "string", "maxLength": 64},
    },
    ("role", "content"),
)
_CHAT_TOOL = _object(
    {
        "type": {"const": "function"},
        "function": _object(
            {"name": _TOOL_NAME, "description": _TEXT, "parameters": _JSON_SCHEMA}, ("name",)
        ),
    },
    ("type", "function"),
)
# gateway/parameters.py: what each top-level field may be (anything else is refused, 40002).
_CHAT_REQUEST = _object(
    {
        "messages": _array(_ref("ChatMessage"), MAX_MESSAGES, min_items=1),
        "model": {
            "type": "string",
            "maxLength": 200,
            "description": "any value: the agent's model answers",
        },
        "stream": {"type": "boolean"},
        "stream_options": _object({"include_usage": {"type": "boolean"}}),
        "max_tokens": _TOKENS,
        "max_completion_tokens": _TOKENS,
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "stop": _STOP,
        "seed": {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX},
        "user": {"type": "string", "maxLength": 256},
        "response_format": _object({"type": {"enum": ["text", "json_object"]}}, ("type",)),
        "tools": _array(_ref("ChatTool"), 16),
        "tool_choice": {"enum": ["none", "auto", "required"]},
        "parallel_tool_calls": {"type": "boolean"},
        "presence_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "frequency_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "logit_bias": {
            "type": "object",
            "propertyNames": {"pattern": "^[0-9]{1,6}$"},
            "additionalProperties": {"type": "integer", "minimum": -100, "maximum": 100},
        },
        "n": {"const": 1, "description": "more choices are refused"},
        "logprobs": {"const": False, "description": "true is refused (leak guard)"},
        "store": {"const": False, "description": "true is refused (the prompt is private)"},
    },
    ("messages",),
)
_ANTHROPIC_MESSAGE = _object(
    {
        "role": {"enum": ["user", "assistant"]},
        "content": {"anyOf": [_TEXT, _array(_TEXT_PART, 16, min_items=1)]},
    },
    ("role", "content"),
)
# gateway/dialects/anthropic_request.py.
_MESSAGES_REQUEST = _object(
    {
        "model": {"type": "string", "maxLength": 200},
        "max_tokens": _TOKENS,
        "messages": _array(_ref("AnthropicMessage"), MAX_MESSAGES, min_items=1),
        "system": {"anyOf": [_TEXT, _array(_TEXT_PART, 16)]},
        "stream": {"type": "boolean"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "stop_sequences": _array(_TEXT, 4),
        "metadata": _object({"user_id": {"type": "string", "maxLength": 256}}),
        "tools": _array(
            _object(
                {"name": _TOOL_NAME, "description": _TEXT, "input_schema": _JSON_SCHEMA},
                ("name", "input_schema"),
            ),
            16,
        ),
        "tool_choice": _object({"type": {"enum": ["auto", "any", "none"]}}, ("type",)),
    },
    ("model", "max_tokens", "messages"),
)
# The Messages route answers errors in Anthropic's shape, with our code inside.
_ANTHROPIC_ERROR = _object(
    {
        "type": {"const": "error"},
        "error": _object(
            {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "code": {"type": "string"},
                "details": {},
            },
            ("type", "message", "code"),
            closed=False,
        ),
        "request_id": {"type": "string"},
    },
    ("type", "error"),
    closed=False,
)
_ERROR_STATUS = {
    400: "Malformed or invalid request (the field is named)",
    401: "Missing, malformed, unknown or revoked API key",
    403: "The key may not call this agent",
    404: "No such agent, or it is not on sale",
    413: "Body over GATEWAY_MAX_BODY_BYTES",
    429: "Quota exhausted, rate limit or the key's spend cap (Retry-After)",
    503: "Provider or our storage unavailable, maintenance, or the connection cap",
    504: "The provider timed out",
}
_AGENT_ID = {
    "name": "agent_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
_KEY_AUTH: list[dict[str, list[str]]] = [{"agentKey": []}, {"bearerKey": []}]


def _errors(statuses: tuple[int, ...], schema: str = "Error") -> dict[str, Any]:
    content = {"application/json": {"schema": _ref(schema)}}
    return {
        str(status): {"description": _ERROR_STATUS[status], "content": content}
        for status in statuses
    }


_CALL_ERRORS = (400, 401, 403, 404, 413, 429, 503, 504)


def _call_operation(
    summary: str, operation_id: str, body: str, answer: str, *, anthropic: bool = False
) -> dict[str, Any]:
    """A call of the agent: a JSON answer or its SSE stream (`stream`)."""
    return {
        "summary": summary,
        "operationId": operation_id,
        "tags": ["chat"],
        "parameters": [_AGENT_ID],
        "security": [*_KEY_AUTH, {"anthropicKey": []}] if anthropic else _KEY_AUTH,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        },
        "responses": {
            "200": {
                "description": answer,
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "text/event-stream": {"schema": {"type": "string"}},
                },
            },
            **_errors(_CALL_ERRORS, "AnthropicError" if anthropic else "Error"),
        },
    }


def _chat_operation(operation_id: str) -> dict[str, Any]:
    return _call_operation(
        "Call the agent (OpenAI chat completions; `stream` for SSE)", operation_id,
        "ChatRequest", "The answer: a chat completion, or its SSE stream",
    )  # fmt: skip


def _model_operation(operation_id: str, one: bool) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [_AGENT_ID]
    if one:
        parameters.append(
            {
                "name": "model",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "maxLength": 100},
            }
        )
    return {
        "summary": "The agent's one model" if one else "List the agent's models (itself)",
        "operationId": operation_id,
        "tags": ["models"],
        "parameters": parameters,
        "security": _KEY_AUTH,
        "responses": {
            "200": {
                "description": "OpenAI model object(s)",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            **_errors((400, 401, 404, 503)),
        },
    }


def _probe(summary: str, operation_id: str, media: str, statuses: tuple[str, ...]) -> Any:
    return {
        "get": {
            "summary": summary,
            "operationId": operation_id,
            "tags": ["operations"],
            "responses": {
                status: {"description": summary, "content": {media: {"schema": {}}}}
                for status in statuses
            },
        }
    }


def build_openapi() -> dict[str, Any]:
    agent = "/proxy/v1/agents/{agent_id}"
    messages = _call_operation(
        "Call the agent (Anthropic Messages API; `stream` for SSE)", "post_messages",
        "MessagesRequest", "An Anthropic message, or its event stream", anthropic=True,
    )  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {"title": "AgentLink gateway", "version": "1.0.0"},
        "paths": {
            f"{agent}/chat": {"post": _chat_operation("post_chat")},
            f"{agent}/chat/completions": {"post": _chat_operation("post_chat_completions")},
            f"{agent}/v1/messages": {"post": messages},
            f"{agent}/models": {"get": _model_operation("get_models", one=False)},
            f"{agent}/models/{{model}}": {"get": _model_operation("get_model", one=True)},
            "/healthz": _probe("Liveness", "get_healthz", "application/json", ("200",)),
            "/readyz": _probe(
                "Readiness (Redis and its Lua scripts)",
                "get_readyz",
                "application/json",
                ("200", "503"),
            ),
            "/metrics": _probe("Prometheus metrics", "get_metrics", "text/plain", ("200",)),
            "/openapi.json": _probe("This document", "get_openapi", "application/json", ("200",)),
        },
        "components": {
            "schemas": {
                "ChatRequest": _CHAT_REQUEST,
                "ChatMessage": _CHAT_MESSAGE,
                "ChatTool": _CHAT_TOOL,
                "TextPart": _TEXT_PART,
                "MessagesRequest": _MESSAGES_REQUEST,
                "AnthropicMessage": _ANTHROPIC_MESSAGE,
                "Error": error_envelope_schema(),
                "AnthropicError": _ANTHROPIC_ERROR,
            },
            "securitySchemes": {
                "agentKey": {"type": "apiKey", "in": "header", "name": "X-AgentLink-Key"},
                "bearerKey": {"type": "http", "scheme": "bearer", "bearerFormat": "ak_..."},
                "anthropicKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
    }
