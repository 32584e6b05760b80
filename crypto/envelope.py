"""AES-256-GCM envelope encryption of agent configs, with key rotation.

An envelope is self-describing, so that any key the ring still holds can open it:

    0x01 | key-id length (1 byte) | key id (ascii) | nonce (12 bytes) | ciphertext + tag (16 bytes)

The associated data binds each ciphertext to the row and version it was written for, so a
ciphertext copied onto another agent or another version of the same agent fails to decrypt
instead of silently serving the wrong config.

Rotation: add the new key to the ring and make it active; old envelopes still decrypt, new
ones use the new key. A rotation command then walks the rows with `KeyRing.needs_rotation` and
`KeyRing.reencrypt`; once none is left the old key can be removed from the ring.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crypto.errors import DecryptionError, UnknownKeyError

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
ENVELOPE_FORMAT_V1 = 0x01
MAX_KEY_ID_LENGTH = 32

# Versioned, NUL-separated domain label: a v2 format or another use of the same keys gets
# associated data that can never equal ours. Versions are ints, whose decimal text holds no
# NUL, so the last NUL splits agent id from version unambiguously.
_ASSOCIATED_DATA_LABEL = b"agentlink/agent-config/v1\x00"
# The version secrets' keys are HMAC-SHA256(key, this label): never the encryption key itself.
_VERSION_SECRET_LABEL = b"agentlink/version-secret/v1"
_KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")
# Settings may carry keys with or without their one "=" of padding.
_ENV_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}=?")


class _ParsedEnvelope(NamedTuple):
    key_id: str
    nonce: bytes
    ciphertext: bytes


def generate_key() -> str:
    """A fresh 256-bit key as urlsafe base64, the form `KeyRing.from_env` reads from settings."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def key_id_of(envelope: bytes) -> str:
    """The id of the key an envelope was sealed with; `DecryptionError` if it is malformed."""
    return _parse(envelope).key_id


class KeyRing:
    """Keys by id: one active key encrypts, every key decrypts, so keys rotate without downtime.

    Only the AESGCM objects are kept, built once here because decryption sits near the request
    hot path; the raw key bytes are not stored and never appear in `repr` or error messages.
    """

    __slots__ = ("_active_key_id", "_ciphers", "_secret_keys")

    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        for key_id, key in keys.items():
            _check_key_id(key_id)
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise ValueError(f"key {key_id!r} must be exactly {KEY_BYTES} bytes")
        if active_key_id not in keys:
            raise ValueError(f"active key id {active_key_id!r} is not in the key ring")
        self._active_key_id = active_key_id
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._secret_keys = {
            key_id: hmac.digest(key, _VERSION_SECRET_LABEL, hashlib.sha256)
            for key_id, key in keys.items()
        }

    @classmethod
    def from_env(cls, spec: str, active: str) -> KeyRing:
        """Parse settings of the form `"k1:<urlsafe base64 key>,k2:<...>"`.

        Whitespace around entries is ignored so that values pasted with a trailing newline
        still load. Error messages name the entry and key id, never the key text.
        """
        keys: dict[str, bytes] = {}
        for position, raw_entry in enumerate(spec.split(","), start=1):
            entry = raw_entry.strip()
            key_id, separator, encoded_key = entry.partition(":")
            if not separator:
                raise ValueError(f"key entry {position} is not of the form <key id>:<base64 key>")
            key_id, encoded_key = key_id.strip(), encoded_key.strip()
            _check_key_id(key_id)
            if key_id in keys:
                raise ValueError(f"key id {key_id!r} appears more than once")
            keys[key_id] = _decode_env_key(key_id, encoded_key)
        return cls(keys, active)

    @property
    def active_key_id(self) -> str:
        return self._active_key_id

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._ciphers)

    def __repr__(self) -> str:
        return f"KeyRing(active={self._active_key_id!r}, key_ids={sorted(self._ciphers)!r})"

    def encrypt(self, plaintext: bytes, *, agent_id: str, version: int) -> bytes:
        """Seal `plaintext` with the active key for this agent id and version."""
        key_id = self._active_key_id
        # A fresh random 96-bit nonce per message: with one key, about 2**32 encryptions keep
        # the collision risk negligible, far beyond how often agent configs are written.
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._ciphers[key_id].encrypt(
            nonce, plaintext, _associated_data(agent_id, version)
        )
        key_id_bytes = key_id.encode("ascii")
        return b"".join(
            (bytes((ENVELOPE_FORMAT_V1, len(key_id_bytes))), key_id_bytes, nonce, ciphertext)
        )

    def decrypt(self, envelope: bytes, *, agent_id: str, version: int) -> bytes:
        """Open an envelope sealed by any key in the ring for this exact agent id and version.

        Raises `UnknownKeyError` if its key is not in the ring, and `DecryptionError` for
        every other failure: wrong key bytes, wrong agent id or version, tampered, truncated
        or malformed bytes.
        """
        parsed = _parse(envelope)
        cipher = self._ciphers.get(parsed.key_id)
        if cipher is None:
            raise UnknownKeyError(f"envelope key id {parsed.key_id!r} is not in the key ring")
        try:
            return cipher.decrypt(
                parsed.nonce, parsed.ciphertext, _associated_data(agent_id, version)
            )
        except InvalidTag:
            # One message for every cause on purpose: telling them apart would help forgers.
            raise DecryptionError(
                f"envelope sealed with key {parsed.key_id!r} failed authentication "
                "(wrong key, wrong agent id or version, or tampered bytes)"
            ) from None

    def version_secret(
        self, envelope: bytes, *, purpose: bytes, agent_id: str, version: int
    ) -> bytes:
        """32 bytes fixed for one (agent id, version) and `purpose` that only a holder of the
        key which sealed `envelope` can compute: the same on every process and across
        restarts, a different value for every version, purpose and key. Re-encrypting the
        envelope under a new key changes it (once)."""
        key_id = key_id_of(envelope)
        key = self._secret_keys.get(key_id)
        if key is None:
            raise UnknownKeyError(f"envelope key id {key_id!r} is not in the key ring")
        message = purpose + b"\x00" + _associated_data(agent_id, version)
        return hmac.digest(key, message, hashlib.sha256)

    def needs_rotation(self, envelope: bytes) -> bool:
        """Whether the envelope was sealed with a key other than the active one."""
        return key_id_of(envelope) != self._active_key_id

    def reencrypt(self, envelope: bytes, *, agent_id: str, version: int) -> bytes:
        """Decrypt with whichever key sealed the envelope and seal it again with the active one."""
        plaintext = self.decrypt(envelope, agent_id=agent_id, version=version)
        return self.encrypt(plaintext, agent_id=agent_id, version=version)


def _check_key_id(key_id: str) -> None:
    if not isinstance(key_id, str) or _KEY_ID_PATTERN.fullmatch(key_id) is None:
        raise ValueError(
            f"key id {key_id!r} must be 1 to {MAX_KEY_ID_LENGTH} characters of [A-Za-z0-9_-]"
        )


def _decode_env_key(key_id: str, encoded_key: str) -> bytes:
    if _ENV_KEY_PATTERN.fullmatch(encoded_key) is None:
        raise ValueError(
            f"key {key_id!r} must be {KEY_BYTES} bytes encoded as urlsafe base64 "
            "(43 characters, optionally followed by '=')"
        )
    # The pattern admits only complete urlsafe base64 of 32 bytes, so decoding cannot fail.
    return base64.urlsafe_b64decode(encoded_key.rstrip("=") + "=")


def _associated_data(agent_id: str, version: int) -> bytes:
    return b"".join(
        (_ASSOCIATED_DATA_LABEL, agent_id.encode("utf-8"), b"\x00", str(version).encode("ascii"))
    )


def _parse(envelope: bytes) -> _ParsedEnvelope:
    # Every malformation maps to DecryptionError so that callers handle one exception type,
    # whatever an attacker or a corrupted row feeds in.
    if len(envelope) < 2:
        raise DecryptionError("envelope is truncated")
    if envelope[0] != ENVELOPE_FORMAT_V1:
        raise DecryptionError(f"unsupported envelope format 0x{envelope[0]:02x}")
    key_id_end = 2 + envelope[1]
    nonce_end = key_id_end + NONCE_BYTES
    if len(envelope) < nonce_end + TAG_BYTES:
        raise DecryptionError("envelope is truncated")
    key_id_bytes = envelope[2:key_id_end]
    try:
        key_id = key_id_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError("envelope key id is not ascii") from None
    if _KEY_ID_PATTERN.fullmatch(key_id) is None:
        raise DecryptionError("envelope key id is malformed")
    return _ParsedEnvelope(key_id, envelope[key_id_end:nonce_end], envelope[nonce_end:])
