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


_TEXT = {"type": "string", "maxLength": 20_000}
_STOP = {"anyOf": [_TEXT, {"type": "array", "maxItems": 4, "items": _TEXT}]}
_TOKENS = {"type": "integer", "minimum": 1, "maximum": INT64_MAX}
_TOOL_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
_JSON_SCHEMA = {"type": "object", "properties": {"type": {"const": "object"}}, "required": ["type"]}

_CHAT_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"enum": ["system", "developer", "user", "assistant"]},
        "content": {
            "anyOf": [
                _TEXT,
                {"type": "array", "minItems": 1, "maxItems": 16, "items": _ref("TextPart")},
            ]
        },
        "name": {"type": "string", "maxLength": 64},
    },
    "additionalProperties": False,
}
_CHAT_TOOL = {
    "type": "object",
    "required": ["type", "function"],
    "properties": {
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": _TOOL_NAME, "description": _TEXT, "parameters": _JSON_SCHEMA},
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
# gateway/parameters.py: what each top-level field may be (anything else is refused, 40002).
_CHAT_REQUEST = {
    "type": "object",
    "required": ["messages"],
    "properties": {
        "messages": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_MESSAGES,
            "items": _ref("ChatMessage"),
        },
        "model": {
            "type": "string",
            "maxLength": 200,
            "description": "any value: the agent's model answers",
        },
        "stream": {"type": "boolean"},
        "stream_options": {
            "type": "object",
            "properties": {"include_usage": {"type": "boolean"}},
            "additionalProperties": False,
        },
        "max_tokens": _TOKENS,
        "max_completion_tokens": _TOKENS,
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "stop": _STOP,
        "seed": {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX},
        "user": {"type": "string", "maxLength": 256},
        "response_format": {
            "type": "object",
            "properties": {"type": {"enum": ["text", "json_object"]}},
            "required": ["type"],
            "additionalProperties": False,
        },
        "tools": {"type": "array", "maxItems": 16, "items": _ref("ChatTool")},
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
    "additionalProperties": False,
}
_ANTHROPIC_TEXT_BLOCK = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"const": "text"}, "text": _TEXT},
    "additionalProperties": False,
}
_ANTHROPIC_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"enum": ["user", "assistant"]},
        "content": {
            "anyOf": [
                _TEXT,
                {"type": "array", "minItems": 1, "maxItems": 16, "items": _ANTHROPIC_TEXT_BLOCK},
            ]
        },
    },
    "additionalProperties": False,
}
# gateway/dialects/anthropic_request.py.
_MESSAGES_REQUEST = {
    "type": "object",
    "required": ["model", "max_tokens", "messages"],
    "properties": {
        "model": {"type": "string", "maxLength": 200},
        "max_tokens": _TOKENS,
        "messages": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_MESSAGES,
            "items": _ref("AnthropicMessage"),
        },
        "system": {
            "anyOf": [_TEXT, {"type": "array", "maxItems": 16, "items": _ANTHROPIC_TEXT_BLOCK}]
        },
        "stream": {"type": "boolean"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "stop_sequences": {"type": "array", "maxItems": 4, "items": _TEXT},
        "metadata": {
            "type": "object",
            "properties": {"user_id": {"type": "string", "maxLength": 256}},
            "additionalProperties": False,
        },
        "tools": {
            "type": "array",
            "maxItems": 16,
            "items": {
                "type": "object",
                "required": ["name", "input_schema"],
                "properties": {
                    "name": _TOOL_NAME,
                    "description": _TEXT,
                    "input_schema": _JSON_SCHEMA,
                },
                "additionalProperties": False,
            },
        },
        "tool_choice": {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"enum": ["auto", "any", "none"]}},
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
# The Messages route answers errors in Anthropic's shape, with our code inside.
_ANTHROPIC_ERROR = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message", "code"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "code": {"type": "string"},
                "details": {},
            },
        },
        "request_id": {"type": "string"},
    },
}
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


def _chat_operation(operation_id: str) -> dict[str, Any]:
    return {
        "summary": "Call the agent (OpenAI chat completions; `stream` for SSE)",
        "operationId": operation_id,
        "tags": ["chat"],
        "parameters": [_AGENT_ID],
        "security": _KEY_AUTH,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref("ChatRequest")}},
        },
        "responses": {
            "200": {
                "description": "The answer: a chat completion, or its SSE stream",
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "text/event-stream": {"schema": {"type": "string"}},
                },
            },
            **_errors(_CALL_ERRORS),
        },
    }


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
    messages = {
        "summary": "Call the agent (Anthropic Messages API; `stream` for SSE)",
        "operationId": "post_messages",
        "tags": ["chat"],
        "parameters": [_AGENT_ID],
        "security": [*_KEY_AUTH, {"anthropicKey": []}],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref("MessagesRequest")}},
        },
        "responses": {
            "200": {
                "description": "An Anthropic message, or its event stream",
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "text/event-stream": {"schema": {"type": "string"}},
                },
            },
            **_errors(_CALL_ERRORS, "AnthropicError"),
        },
    }
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
                "TextPart": {
                    "type": "object",
                    "required": ["type", "text"],
                    "properties": {"type": {"const": "text"}, "text": _TEXT},
                    "additionalProperties": False,
                },
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
