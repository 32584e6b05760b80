"""Failed-login throttling per account and per client IP, in Redis (shared by all pods).

After `account_limit` failures for one email, or `ip_limit` failures from one IP, within
`window_s`, logins answer 429 `42902` with Retry-After until the window passes. A successful
login clears the account's counter. The email is hashed in the key: no addresses in Redis.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError

from common import keyspace
from common.errors import ApiError, ErrorCode


@dataclass(frozen=True, slots=True)
class ThrottleSettings:
    account_limit: int = 5
    ip_limit: int = 50
    window_s: int = 900


def _keys(email: str, ip: str | None) -> list[str]:
    return [keyspace.login_failures_of_account(email), keyspace.login_failures_from_ip(ip)]


class LoginThrottle:
    def __init__(self, redis: redis_asyncio.Redis, settings: ThrottleSettings) -> None:
        self._redis = redis
        self._settings = settings

    async def check(self, email: str, ip: str | None) -> None:
        keys = _keys(email, ip)
        try:
            account, by_ip = await self._redis.mget(keys)
        except RedisError:
            raise ApiError(ErrorCode.STORAGE_UNAVAILABLE) from None
        over = (account is not None and int(account) >= self._settings.account_limit) or (
            by_ip is not None and int(by_ip) >= self._settings.ip_limit
        )
        if over:
            ttl = max(await self._redis.ttl(keys[0]), await self._redis.ttl(keys[1]), 1)
            raise ApiError(
                ErrorCode.RATE_LIMITED,
                "Too many failed logins; try again later.",
                headers={"Retry-After": str(ttl)},
            )

    async def failed(self, email: str, ip: str | None) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in _keys(email, ip):
                pipe.incr(key)
                pipe.expire(key, self._settings.window_s, nx=True)
            await pipe.execute()

    async def succeeded(self, email: str) -> None:
        await self._redis.delete(keyspace.login_failures_of_account(email))
