"""An Anthropic Messages API request → the pipeline's `ChatRequest` (OpenAI chat inside).

Each top-level field has one rule (README, "Anthropic Messages API"); anything else is refused
with 400 `40002` naming it, never dropped:

- `model`: any value, replaced by the agent's; `max_tokens`: required (as Anthropic requires
  it), capped by the agent's own cap like `max_tokens` on the chat route;
- `messages`: user and assistant turns; blocks `text`, `image` (base64 or URL), `tool_use`
  (assistant), `tool_result` (user, text content; `is_error` marks the text "[error] ");
- `system`: the developer's system text, after the agent's prompt and knowledge;
- `stream`, `temperature`, `top_p` (the agent's rule), `stop_sequences` (as `stop`),
  `metadata.user_id` (as `user`), `tools` (client tools: name, description, input_schema),
  `tool_choice` (auto, any, tool, none; `disable_parallel_tool_use`);
- refused: `top_k`, `thinking`, server tools, `document`/`thinking` blocks, and the rest.

`cache_control` marks on the developer's blocks are accepted and have no effect: what the
gateway caches is the agent's own prefix, by the agent's setting.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.chat_request import ChatRequest, chat_request_of, json_object_body
from gateway.parameters import invalid

_READ = frozenset({
    "model", "max_tokens", "messages", "system", "stream", "temperature", "top_p",
    "stop_sequences", "metadata", "tools", "tool_choice",
})  # fmt: skip
_WHY_REFUSED = {
    "top_k": "is not supported (the agent's sampling is temperature and top_p)",
    "thinking": "is not supported: extended thinking is not offered through agents",
}
_BLOCK_KEYS = frozenset({"type", "text", "source", "id", "name", "input", "tool_use_id",
                         "content", "is_error", "cache_control", "citations"})  # fmt: skip


def parse_messages_request(body: bytes) -> ChatRequest:
    data = json_object_body(body)
    for name, value in data.items():
        if name not in _READ and value is not None:
            raise invalid(name, _WHY_REFUSED.get(name, "is not a supported parameter"))
    if data.get("max_tokens") is None:
        raise invalid("max_tokens", "is required")
    return chat_request_of(_chat_fields(data))


def _chat_fields(data: dict[str, object]) -> dict[str, object]:
    """The OpenAI chat body that says what `data` says."""
    chat: dict[str, object] = {"max_tokens": data["max_tokens"], "messages": _messages(data)}
    for name in ("temperature", "top_p", "stream"):
        if data.get(name) is not None:
            chat[name] = data[name]
    if data.get("stream") is True:
        # The usage chunk always flows (with the cost): the final message_delta carries it.
        chat["stream_options"] = {"include_usage": True}
    if data.get("stop_sequences") is not None:
        chat["stop"] = data["stop_sequences"]
    if data.get("metadata") is not None:
        user = _user_of(data["metadata"])
        if user is not None:
            chat["user"] = user
    if data.get("tools") is not None:
        chat["tools"] = _tools(data["tools"])
    if data.get("tool_choice") is not None:
        chat.update(_tool_choice(data["tool_choice"]))
    return chat


def _messages(data: dict[str, object]) -> list[dict[str, Any]]:
    turns = data.get("messages")
    if not isinstance(turns, list) or not turns:
        raise invalid("messages", "must be a non-empty array")
    out: list[dict[str, Any]] = []
    system = data.get("system")
    if system is not None:
        out.append({"role": "system", "content": _system_text(system)})
    for index, turn in enumerate(turns):
        where = f"messages[{index}]"
        if not isinstance(turn, dict):
            raise invalid(where, "must be an object")
        role = turn.get("role")
        if role == "user":
            out.extend(_user_turn(turn.get("content"), where))
        elif role == "assistant":
            out.append(_assistant_turn(turn.get("content"), where))
        else:
            raise invalid(f"{where}.role", "must be user or assistant")
    return out


def _system_text(system: object) -> str:
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        raise invalid("system", "must be a string or an array of text blocks")
    texts = []
    for index, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise invalid(f"system[{index}]", "must be a text block")
        texts.append(_text_of(block, f"system[{index}]"))
    return "\n\n".join(texts)


def _blocks(content: object, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise invalid(f"{where}.content", "must be a string or a non-empty array of blocks")
    for index, block in enumerate(content):
        if not isinstance(block, dict):
            raise invalid(f"{where}.content[{index}]", "must be an object")
        for key, value in block.items():
            if key not in _BLOCK_KEYS and value is not None:
                raise invalid(f"{where}.content[{index}].{key}", "is not supported")
    return content


def _text_of(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise invalid(f"{where}.text", "must be a string")
    return text


def _user_turn(content: object, where: str) -> list[dict[str, Any]]:
    """Tool results become `tool` messages (first, as OpenAI wants them right after the
    assistant's calls), the rest one user message of parts."""
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for index, block in enumerate(_blocks(content, where)):
        at = f"{where}.content[{index}]"
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": _text_of(block, at)})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block, at)}})
        elif kind == "tool_result":
            tools.append(_tool_result(block, at))
        else:
            raise invalid(f"{at}.type", f"{kind!r} blocks are not supported in a user turn")
    if parts:
        only_text = len(parts) == 1 and parts[0]["type"] == "text"
        tools.append({"role": "user", "content": parts[0]["text"] if only_text else parts})
    return tools


def _image_url(block: dict[str, Any], where: str) -> str:
    source = block.get("source")
    if isinstance(source, dict):
        if source.get("type") == "base64":
            media, data = source.get("media_type"), source.get("data")
            if isinstance(media, str) and isinstance(data, str):
                return f"data:{media};base64,{data}"
        elif source.get("type") == "url" and isinstance(source.get("url"), str):
            return str(source["url"])
    raise invalid(f"{where}.source", "must be a base64 or url image source")


def _tool_result(block: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise invalid(f"{where}.tool_use_id", "must be a non-empty string")
    content = block.get("content", "")
    if isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise invalid(f"{where}.content[{index}]", "must be a text block")
            texts.append(_text_of(part, f"{where}.content[{index}]"))
        content = "\n\n".join(texts)
    elif not isinstance(content, str):
        raise invalid(f"{where}.content", "must be a string or an array of text blocks")
    if block.get("is_error") is True:
        content = "[error] " + content
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _assistant_turn(content: object, where: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for index, block in enumerate(_blocks(content, where)):
        at = f"{where}.content[{index}]"
        kind = block.get("type")
        if kind == "text":
            texts.append(_text_of(block, at))
        elif kind == "tool_use":
            call_id, name, args = block.get("id"), block.get("name"), block.get("input", {})
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise invalid(at, "a tool_use block needs a string id and name")
            if not isinstance(args, dict):
                raise invalid(f"{at}.input", "must be an object")
            arguments = orjson.dumps(args).decode()
            function = {"name": name, "arguments": arguments}
            calls.append({"id": call_id, "type": "function", "function": function})
        else:
            raise invalid(f"{at}.type", f"{kind!r} blocks are not supported in an assistant turn")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    elif not texts:
        raise invalid(f"{where}.content", "is empty")
    return message


def _user_of(metadata: object) -> str | None:
    if not isinstance(metadata, dict):
        raise invalid("metadata", "must be an object")
    for key in metadata:
        if key != "user_id":
            raise invalid(f"metadata.{key}", "is not supported")
    user = metadata.get("user_id")
    if user is not None and not isinstance(user, str):
        raise invalid("metadata.user_id", "must be a string")
    return user


def _tools(tools: object) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise invalid("tools", "must be an array")
    out = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise invalid(where, "must be an object")
        if tool.get("type") not in (None, "custom"):
            raise invalid(f"{where}.type", "server tools are not supported; define client tools")
        name, schema = tool.get("name"), tool.get("input_schema")
        if not isinstance(name, str) or not name:
            raise invalid(f"{where}.name", "must be a non-empty string")
        if not isinstance(schema, dict):
            raise invalid(f"{where}.input_schema", "must be an object")
        function: dict[str, Any] = {"name": name, "parameters": schema}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: object) -> dict[str, Any]:
    if not isinstance(choice, dict):
        raise invalid("tool_choice", "must be an object")
    kind = choice.get("type")
    fields: dict[str, Any] = {}
    if kind == "auto":
        fields["tool_choice"] = "auto"
    elif kind == "any":
        fields["tool_choice"] = "required"
    elif kind == "none":
        fields["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        fields["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise invalid("tool_choice.type", "must be auto, any, tool (with a name) or none")
    if choice.get("disable_parallel_tool_use") is True:
        fields["parallel_tool_calls"] = False
    return fields
