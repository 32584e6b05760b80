"""The canary: a 60-bit string planted in the prompt sent upstream, so an answer that repeats
its instructions is a certain leak. One per agent version (`version_canary`), so the prompt
sent upstream is the same bytes on every call and the providers' prompt caches can hit; see
the package docstring for why that keeps what a per-call canary detected."""

from __future__ import annotations

import base64
import secrets
from typing import Final

from gateway.leak_guard.normaliser import words

CANARY_LENGTH: Final = 12


# What the key ring's version secret is for (crypto/envelope.py KeyRing.version_secret).
CANARY_PURPOSE: Final = b"agentlink/leak-guard-canary/v1"


def new_canary() -> str:
    """A fresh random canary: 12 base32 characters (60 random bits)."""
    return _canary_text(secrets.token_bytes(8))


def version_canary(version_secret: bytes) -> str:
    """An agent version's canary, from its secret (the key ring's, for CANARY_PURPOSE): the
    same on every gateway process, and unguessable without the encryption key."""
    return _canary_text(version_secret[:8])


def _canary_text(random_bytes: bytes) -> str:
    return base64.b32encode(random_bytes).decode("ascii")[:CANARY_LENGTH]


def plant_canary(system_prompt: str, canary: str) -> str:
    """The system prompt to send upstream, framed by the canary as if it were part of it."""
    return f"[Instruction set {canary}]\n{system_prompt}\n[End of instruction set {canary}]"


def canary_key(canary: str | None) -> str:
    return "".join(words(canary)) if canary else ""
