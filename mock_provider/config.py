"""Static configuration of one mock provider app (everything else is per request)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MockConfig:
    """Defaults for the mock provider; every field can be overridden per request by a control."""

    reply_prefix: str = "Mock reply to: "
    # The echoed user text is cut to this many characters.
    reply_max_chars: int = 200
    # Content chunks per streamed answer (control `chunks`).
    default_chunks: int = 5
    # How long `stall_after` holds the connection open (control `stall_ms`).
    default_stall_ms: int = 3_600_000
    # Default embedding dimension (request field `dimensions` overrides it).
    embedding_dimensions: int = 384
    # Upper bound of the request field `dimensions`.
    max_embedding_dimensions: int = 8192
    # Entries kept by the request log behind GET /_mock/requests.
    request_log_size: int = 200
    # The prompt cache (mock_provider/prompt_cache.py): whether a request uses it unless its
    # `cache` control says otherwise (off, so that usage stays what a test expects), and how
    # many prefixes it remembers.
    prompt_cache: bool = False
    prompt_cache_size: int = 10_000
