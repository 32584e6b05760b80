"""Timestamped HMAC-SHA256 signatures for outgoing webhooks, in Stripe's header format.

The header is `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`. Signing the timestamp
with the body lets a receiver reject old captured deliveries (replays) by their age, without
remembering what it has seen. Receivers may get several `v1` entries while a secret is being
rotated; a match with any of them is enough. Entries with other names are ignored so that a
future scheme can be added next to `v1` without breaking existing receivers.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from crypto.errors import SignatureError

WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - a public prefix, not a secret
DEFAULT_TOLERANCE_SECONDS = 300
SIGNATURE_SCHEME = "v1"

# ASCII digits only, and bounded: `int()` would also take "+5", " 5", "5_0" or Arabic digits.
_TIMESTAMP_PATTERN = re.compile(r"[0-9]{1,15}")
_SIGNATURE_PATTERN = re.compile(r"[0-9a-f]{64}")


def generate_webhook_secret() -> str:
    """A new signing secret for a webhook endpoint: `whsec_` + 256 random bits."""
    return WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: bytes | str, body: bytes, timestamp: int) -> str:
    """The signature header value for `body` sent at `timestamp` (unix seconds)."""
    if timestamp < 0:
        raise ValueError("timestamp must not be negative")
    return f"t={timestamp},{SIGNATURE_SCHEME}={_signature(secret, body, timestamp)}"


def verify(
    secret: bytes | str,
    body: bytes,
    header: str,
    *,
    now: int,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Check a signature header; `SignatureError` if malformed, wrong, or outside tolerance.

    The timestamp is accepted up to `tolerance_seconds` away from `now` on either side: too
    old is a possible replay, too new means a clock is off or the header was forged.
    """
    if tolerance_seconds < 0:
        raise ValueError("tolerance_seconds must not be negative")
    timestamp, candidates = _parse_header(header)
    expected = _signature(secret, body, timestamp).encode("ascii")
    # Compare against every candidate, without stopping early, so timing reveals nothing.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate.encode("ascii"))
    if not matched:
        raise SignatureError("webhook signature does not match")
    if abs(now - timestamp) > tolerance_seconds:
        raise SignatureError(
            f"webhook timestamp is {now - timestamp}s from now, beyond {tolerance_seconds}s"
        )


def _signature(secret: bytes | str, body: bytes, timestamp: int) -> str:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        name, separator, value = item.strip().partition("=")
        if not separator:
            raise SignatureError("webhook signature header has an entry without '='")
        if name == "t":
            if timestamp is not None:
                raise SignatureError("webhook signature header has more than one timestamp")
            if _TIMESTAMP_PATTERN.fullmatch(value) is None:
                raise SignatureError("webhook signature header has a malformed timestamp")
            timestamp = int(value)
        elif name == SIGNATURE_SCHEME:
            if _SIGNATURE_PATTERN.fullmatch(value) is None:
                raise SignatureError("webhook signature header has a malformed v1 signature")
            signatures.append(value)
    if timestamp is None:
        raise SignatureError("webhook signature header has no timestamp")
    if not signatures:
        raise SignatureError("webhook signature header has no v1 signature")
    return timestamp, signatures
