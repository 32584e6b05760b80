"""The owner of a live API key, from its Redis record (loaded from Postgres when cold).

For the routes that need a valid key but take no admission (no quota, no rate-limit slot):
the models list and the MCP endpoint's handshake and listing. A call goes through admission,
which checks the key itself in the same Redis round trip.
"""

from __future__ import annotations

from redis.exceptions import RedisError

from common import keyspace
from common.db import UNAVAILABLE_ERRORS
from common.errors import ApiError, ErrorCode
from crypto.api_keys import shard_of_key_hash
from gateway.state import GatewayState

# Redis away, or Postgres (a cold record is loaded from it).
_STORAGE_ERRORS: tuple[type[Exception], ...] = (RedisError, *UNAVAILABLE_ERRORS)


async def live_key_owner(state: GatewayState, key_hash: str) -> str:
    """The key owner's user id, else 40103 (unknown, revoked) or 50302 (Redis or Postgres away)."""
    shard = shard_of_key_hash(key_hash)
    record = keyspace.api_key_record(shard, key_hash)
    try:
        status, owner = await state.redis.hmget(record, ["status", "user"])
        if status is None:
            await state.records.load_key(key_hash, shard)
            status, owner = await state.redis.hmget(record, ["status", "user"])
    except _STORAGE_ERRORS:
        raise ApiError(ErrorCode.STORAGE_UNAVAILABLE) from None
    if status != b"ok" or not isinstance(owner, bytes):
        raise ApiError(ErrorCode.INVALID_API_KEY)
    return owner.decode()
