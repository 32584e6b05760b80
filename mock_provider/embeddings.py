"""OpenAI ``POST /v1/embeddings``: deterministic unit vectors derived from the input text."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

import orjson

from mock_provider.reply import BadRequest, Prompt, estimate_tokens


def embedding_inputs(body: dict[str, Any], prompt: Prompt) -> list[str]:
    """The texts to embed: ``input`` as a string, a list of strings, a token array or a list of
    token arrays (token arrays are embedded as their decimal text). Directives are stripped."""
    raw = body.get("input")
    if isinstance(raw, str):
        return [prompt.text(raw)]
    if isinstance(raw, list) and raw:
        if all(isinstance(item, int) for item in raw):
            return [" ".join(map(str, raw))]
        texts = []
        for item in raw:
            if isinstance(item, str):
                texts.append(prompt.text(item))
            elif isinstance(item, list) and all(isinstance(token, int) for token in item):
                texts.append(" ".join(map(str, item)))
            else:
                break
        else:
            return texts
    raise BadRequest("'input' must be a non-empty string, array of strings or token arrays")


def dimensions(body: dict[str, Any], default: int, maximum: int) -> int:
    value = body.get("dimensions", default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
        raise BadRequest(f"'dimensions' must be an integer in [1, {maximum}]")
    return value


def vector(text: str, size: int) -> list[float]:
    """A unit vector that depends only on ``text`` and ``size``."""
    digest = hashlib.shake_256(text.encode()).digest(2 * size)
    values = struct.unpack(f"<{size}h", digest)
    norm = math.hypot(*values)
    if not norm:  # all-zero digest: astronomically unlikely, but stay unit length
        return [1.0] + [0.0] * (size - 1)
    return [value / norm for value in values]


def response(
    texts: list[str],
    size: int,
    *,
    model: str,
    encoding: str,
    prompt_tokens: int | None,
) -> bytes:
    data: list[dict[str, Any]] = []
    for index, text in enumerate(texts):
        values = vector(text, size)
        embedding: list[float] | str
        if encoding == "base64":  # little-endian float32, what the openai SDK asks for by default
            embedding = base64.b64encode(struct.pack(f"<{size}f", *values)).decode()
        else:
            embedding = values
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    if prompt_tokens is None:
        prompt_tokens = estimate_tokens(sum(len(text) for text in texts))
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})
