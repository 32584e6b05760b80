"""Step 1 of the pipeline: the caller's key from its header, refused before any lookup unless
it could be one we issued.

A current key carries its own CRC32 (crypto/api_keys.py), so a forged or mistyped one fails
here and costs no Redis or Postgres round trip. A legacy key (issued before the checksum) has
none; the gateway reads the hashes of all unrevoked legacy keys once at start-up
(`api_keys.legacy_format`, migrations/0009) and refuses any legacy-shaped key outside that set
just as early. None are issued any more, so the set only shrinks: a key revoked after the read
is still looked up and found revoked.

If the read fails (Postgres not up yet, or the migration not applied), legacy keys are looked
up as before (the negative cache still bounds repeats) and the read is retried, at most every
`RELOAD_INTERVAL_S`, by the next legacy-shaped request.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from common.errors import ApiError, ErrorCode
from crypto.api_keys import hash_api_key, is_legacy_api_key, is_well_formed_api_key

logger = logging.getLogger("agentlink.gateway")

RELOAD_INTERVAL_S = 10.0
READ_TIMEOUT_S = 3.0  # a start-up with Postgres away must not wait for asyncpg's 60 s
_LEGACY_HASHES = "SELECT key_hash FROM api_keys WHERE legacy_format AND revoked_at IS NULL"


def api_key_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The key in `X-AgentLink-Key` (or `Authorization: Bearer`), if it is well formed and its
    checksum holds; 401 otherwise."""
    key = b""
    for name, value in headers:
        if name in (b"x-agentlink-key", b"x-api-key"):  # x-api-key: as Anthropic's API takes it
            key = value
            break
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            key = value[7:].strip()
    text = key.decode("latin-1")
    if not is_well_formed_api_key(text):
        raise ApiError(ErrorCode.INVALID_API_KEY)
    return text


class KeyGate:
    """Turns a request's key into the hash admission looks up, or refuses it (401)."""

    def __init__(self, db: asyncpg.Pool) -> None:
        self._db = db
        self._legacy: frozenset[str] | None = None  # None: not read (yet)
        self._next_read = 0.0
        self._reading: asyncio.Lock = asyncio.Lock()

    @property
    def legacy_hashes_loaded(self) -> bool:
        return self._legacy is not None

    async def load_legacy_hashes(self) -> bool:
        """Read the legacy set; False (and logged) if Postgres cannot answer now."""
        async with self._reading:
            if self._legacy is not None:
                return True
            self._next_read = time.monotonic() + RELOAD_INTERVAL_S
            try:
                rows = await asyncio.wait_for(self._db.fetch(_LEGACY_HASHES), READ_TIMEOUT_S)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                logger.warning(
                    "legacy API key hashes not read (%s); legacy keys are looked up until then",
                    type(error).__name__,
                )
                return False
            self._legacy = frozenset(row["key_hash"] for row in rows)
            return True

    async def key_hash(self, headers: list[tuple[bytes, bytes]]) -> str:
        key = api_key_from(headers)
        key_hash = hash_api_key(key)
        if not is_legacy_api_key(key):
            return key_hash
        if self._legacy is None and time.monotonic() >= self._next_read:
            await self.load_legacy_hashes()
        if self._legacy is not None and key_hash not in self._legacy:
            raise ApiError(ErrorCode.INVALID_API_KEY)
        return key_hash
