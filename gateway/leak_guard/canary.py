"""The per-request canary: a random 60-bit string planted in the prompt sent upstream, so
an answer that repeats its instructions is a certain leak. See the package docstring."""

from __future__ import annotations

import base64
import secrets
from typing import Final

from gateway.leak_guard.normaliser import words

CANARY_LENGTH: Final = 12


def new_canary() -> str:
    """A fresh per-request canary: 12 base32 characters (60 random bits)."""
    return base64.b32encode(secrets.token_bytes(8)).decode("ascii")[:CANARY_LENGTH]


def plant_canary(system_prompt: str, canary: str) -> str:
    """The system prompt to send upstream, framed by the canary as if it were part of it."""
    return f"[Instruction set {canary}]\n{system_prompt}\n[End of instruction set {canary}]"


def canary_key(canary: str | None) -> str:
    return "".join(words(canary)) if canary else ""
