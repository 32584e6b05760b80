"""Developer API keys: generation, shape and checksum check, hashing and shard routing.

A key is `ak_` followed by 32 base62 characters from the OS CSPRNG (about 190 bits) and 6 base62
characters of CRC32(`ak_` + body), 41 characters in all. Only its SHA-256 hex digest is stored
and looked up; a fast unsalted hash is right here because the key is random and long, unlike a
password.

The checksum lets the gateway refuse a mistyped or randomly forged key before any lookup, so a
flood of distinct made-up keys reaches neither Redis nor Postgres (issue 9, item 8). A CRC is no
secret: it stops floods and typos, not an attacker who computes it; such keys are still looked
up once and then negatively cached, as before. Keys made before the checksum (`ak_` + 32,
"legacy", flagged in `api_keys.legacy_format`) keep working: the gateway holds the set of their
hashes in memory and refuses a legacy-shaped key outside it just as early (gateway/api_keys.py).

Keys are generated so that SHA-256(key) mod `SHARD_COUNT` equals the owner's Redis shard: the
gateway then routes a request from the key alone, before any lookup. The rejection sampling
that achieves this costs 10 bits of the key's entropy, leaving about 180.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

API_KEY_PREFIX = "ak_"
API_KEY_BODY_LENGTH = 32
API_KEY_CHECKSUM_LENGTH = 6  # 62**6 > 2**32: any CRC32 fits
API_KEY_LENGTH = len(API_KEY_PREFIX) + API_KEY_BODY_LENGTH + API_KEY_CHECKSUM_LENGTH  # 41
LEGACY_API_KEY_LENGTH = len(API_KEY_PREFIX) + API_KEY_BODY_LENGTH  # 35, before the checksum
DISPLAY_PREFIX_LENGTH = 8  # the width of the DB column that keeps it
SHARD_COUNT = 1024

_BASE62_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# 248 is 4 * 62: bytes below it map uniformly onto the alphabet by `% 62`; the 8 bytes above
# would favour the first 8 characters, so they are dropped instead.
_UNBIASED_BYTE_LIMIT = 4 * len(_BASE62_ALPHABET)
_BYTE_TO_BASE62 = bytes(_BASE62_ALPHABET[byte % len(_BASE62_ALPHABET)] for byte in range(256))
_BIASED_BYTES = bytes(range(_UNBIASED_BYTE_LIMIT, 256))
# One draw yields about 124 candidate keys; about 1024 candidates are needed per key.
_RANDOM_BATCH_BYTES = 4096
_API_KEY_PREFIX_BYTES = API_KEY_PREFIX.encode("ascii")
_PAIR_COUNT = len(_BASE62_ALPHABET) ** 2  # 3844; 3844**3 > 2**32, so three pairs hold a CRC32
_BASE62_PAIRS = [
    bytes(
        (
            _BASE62_ALPHABET[pair // len(_BASE62_ALPHABET)],
            _BASE62_ALPHABET[pair % len(_BASE62_ALPHABET)],
        )
    )
    for pair in range(_PAIR_COUNT)
]
# `[0-9]` and not `\d`, which would also accept non-ASCII digits.
_API_KEY_PATTERN = re.compile(
    rf"{API_KEY_PREFIX}[0-9A-Za-z]{{{API_KEY_BODY_LENGTH}}}(?:[0-9A-Za-z]{{{API_KEY_CHECKSUM_LENGTH}}})?"
)
_KEY_HASH_PATTERN = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True)
class GeneratedApiKey:
    """A new key: `plaintext` is shown to the developer once; the rest is stored."""

    plaintext: str = field(repr=False)  # kept out of repr so it cannot leak into logs
    key_hash: str
    prefix: str
    shard: int


def generate_api_key(shard: int) -> GeneratedApiKey:
    """A fresh key whose hash falls in `shard`; `ValueError` if the shard is out of range."""
    _check_shard(shard)
    for body in _random_key_bodies():
        unchecked = _API_KEY_PREFIX_BYTES + body
        candidate = unchecked + _checksum(unchecked)
        digest = hashlib.sha256(candidate).digest()
        # The digest read as a big-endian integer, mod 1024: its last two bytes suffice.
        if int.from_bytes(digest[-2:], "big") % SHARD_COUNT == shard:
            plaintext = candidate.decode("ascii")
            return GeneratedApiKey(
                plaintext=plaintext,
                key_hash=digest.hex(),
                prefix=display_prefix(plaintext),
                shard=shard,
            )
    raise AssertionError("unreachable: the candidate stream is endless")  # pragma: no cover


def random_shard() -> int:
    """A uniformly random shard for a new user."""
    return secrets.randbelow(SHARD_COUNT)


def hash_api_key(key: str) -> str:
    """The hex SHA-256 of a key: what is stored and looked up.

    Check `is_well_formed_api_key` first on untrusted input; it also rules out strings that
    cannot be encoded, such as lone surrogates.
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def shard_of_key_hash(key_hash_hex: str) -> int:
    """The shard of a stored key hash: the digest as an integer, mod `SHARD_COUNT`."""
    if _KEY_HASH_PATTERN.fullmatch(key_hash_hex) is None:
        raise ValueError("a key hash must be 64 hexadecimal characters")
    # The last 3 hex digits are the low 12 bits, enough for the low 10 that mod 1024 keeps.
    return int(key_hash_hex[-3:], 16) % SHARD_COUNT


def shard_of_key(key: str) -> int:
    """The shard that owns a key, computed from the key alone."""
    return shard_of_key_hash(hash_api_key(key))


def is_well_formed_api_key(key: str) -> bool:
    """Whether `key` is `ak_` + 32 ASCII base62 characters and either its right checksum or,
    for a legacy key, none. Never raises. A legacy-shaped key is well formed here; whether it
    is one we issued is the gateway's legacy set's to say (`is_legacy_api_key`)."""
    if not isinstance(key, str) or _API_KEY_PATTERN.fullmatch(key) is None:
        return False
    if len(key) == LEGACY_API_KEY_LENGTH:
        return True
    unchecked = key[:LEGACY_API_KEY_LENGTH].encode("ascii")
    # Plain equality: the checksum is public, a timing difference tells nothing.
    return _checksum(unchecked) == key[LEGACY_API_KEY_LENGTH:].encode("ascii")


def is_legacy_api_key(key: str) -> bool:
    """Whether a well-formed key has the pre-checksum shape (35 characters)."""
    return len(key) == LEGACY_API_KEY_LENGTH


def display_prefix(key: str) -> str:
    """The first 8 characters (`ak_` + 5), enough for a developer to recognise a key."""
    return key[:DISPLAY_PREFIX_LENGTH]


def constant_time_equals(a: str, b: str) -> bool:
    """Compare secrets without leaking, through timing, how many leading characters match."""
    # Encoded first because `compare_digest` raises TypeError on non-ASCII str; surrogatepass
    # keeps the encoding one-to-one and exception-free even for lone surrogates.
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )


def _checksum(unchecked: bytes) -> bytes:
    """CRC32 of `ak_` + body as 6 base62 characters, most significant first (three table
    lookups of two characters each: generation computes one per candidate, ~1024 per key)."""
    high, low = divmod(zlib.crc32(unchecked), _PAIR_COUNT)
    top, middle = divmod(high, _PAIR_COUNT)
    return _BASE62_PAIRS[top] + _BASE62_PAIRS[middle] + _BASE62_PAIRS[low]


def _check_shard(shard: int) -> None:
    if isinstance(shard, bool) or not 0 <= shard < SHARD_COUNT:
        raise ValueError(f"shard must be an integer in [0, {SHARD_COUNT}), got {shard!r}")


def _random_key_bodies() -> Iterator[bytes]:
    """Endless key bodies of uniform base62, drawn in batches to keep per-key cost tiny."""
    while True:
        # Map every byte to a character and drop the biased ones, both in one C-level pass;
        # what remains is a stream of independent uniform characters, cut into key bodies.
        characters = os.urandom(_RANDOM_BATCH_BYTES).translate(_BYTE_TO_BASE62, _BIASED_BYTES)
        for start in range(0, len(characters) - API_KEY_BODY_LENGTH + 1, API_KEY_BODY_LENGTH):
            yield characters[start : start + API_KEY_BODY_LENGTH]
