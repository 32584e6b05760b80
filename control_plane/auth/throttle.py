"""Failed-login throttling in Redis (shared by all pods) that slows guessing without letting a
stranger lock the owner out (issue 9, item 9).

Three counters per window of `window_s`, each started by its first failure:
- one account from one IP: after `account_limit` failures that IP may not try that account
  again until the window passes (the owner elsewhere is not concerned);
- one IP over all accounts: after `ip_limit` failures the IP may not log in at all;
- one account over all IPs: from `account_ceiling` failures on, each further failure makes
  the account wait `2 ** (failures - account_ceiling)` seconds (at most `backoff_max_s`)
  before the next attempt, which caps a distributed guesser at a few attempts per
  `backoff_max_s` — except from an IP the account logged in from successfully within
  `KNOWN_IP_TTL_S`: the owner at home or at work keeps logging in while being attacked.

Refusals are 429 `42902` with Retry-After. A success clears only its own account+IP counter:
the owner logging in does not reset an attacker's progress. Emails and account+IP pairs are
hashed in the keys (common/keyspace.py): no addresses of users in Redis. The client IP is the
peer's unless it is one of `TRUSTED_PROXIES` (control_plane/app.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.exceptions import RedisError

from common import keyspace
from common.errors import ApiError, ErrorCode
from common.redis_store import RedisClient

KNOWN_IP_TTL_S = 30 * 24 * 3600


@dataclass(frozen=True, slots=True)
class ThrottleSettings:
    account_limit: int = 5
    ip_limit: int = 50
    window_s: int = 900
    account_ceiling: int = 20
    backoff_max_s: int = 300


def _too_many(retry_after_s: int) -> ApiError:
    return ApiError(
        ErrorCode.RATE_LIMITED,
        "Too many failed logins; try again later.",
        headers={"Retry-After": str(max(retry_after_s, 1))},
    )


class LoginThrottle:
    def __init__(self, redis: RedisClient, settings: ThrottleSettings) -> None:
        self._redis = redis
        self._settings = settings

    async def check(self, email: str, ip: str | None) -> None:
        """429 if this IP may not try this account now."""
        pair = keyspace.login_failures_of_account_from_ip(email, ip)
        by_ip = keyspace.login_failures_from_ip(ip)
        wait = keyspace.login_backoff_of_account(email)
        try:
            # One command per key: the keys are in different cluster slots (REDIS_CLUSTER).
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(pair)
                pipe.get(by_ip)
                pipe.exists(keyspace.login_known_ip(email, ip) if ip else "")
                pipe.ttl(wait)
                pipe.ttl(pair)
                pipe.ttl(by_ip)
                pair_count, ip_count, known, wait_s, pair_ttl, ip_ttl = await pipe.execute()
        except RedisError:
            raise ApiError(ErrorCode.STORAGE_UNAVAILABLE) from None
        if pair_count is not None and int(pair_count) >= self._settings.account_limit:
            raise _too_many(pair_ttl)
        if ip_count is not None and int(ip_count) >= self._settings.ip_limit:
            raise _too_many(ip_ttl)
        if not known and wait_s > 0:
            raise _too_many(wait_s)

    async def failed(self, email: str, ip: str | None) -> None:
        window = self._settings.window_s
        account = keyspace.login_failures_of_account(email)
        # Not a transaction: the three counters are in three cluster slots (REDIS_CLUSTER).
        # Each counter gets its window before it is counted, so a pipeline cut short leaves
        # no counter that never expires; the EXPIRE after covers one that expired in between.
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in (
                keyspace.login_failures_of_account_from_ip(email, ip),
                keyspace.login_failures_from_ip(ip),
                account,
            ):
                pipe.set(key, 0, ex=window, nx=True)
                pipe.incr(key)
                pipe.expire(key, window, nx=True)
            *_, failures, _ = await pipe.execute()
        beyond = int(failures) - self._settings.account_ceiling
        if beyond >= 0:
            backoff = min(2 ** min(beyond, 30), self._settings.backoff_max_s)
            await self._redis.set(keyspace.login_backoff_of_account(email), "1", ex=backoff)

    async def succeeded(self, email: str, ip: str | None) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:  # two slots
            pipe.delete(keyspace.login_failures_of_account_from_ip(email, ip))
            if ip:  # clients of no known address share nothing worth remembering
                pipe.set(keyspace.login_known_ip(email, ip), "1", ex=KNOWN_IP_TTL_S)
            await pipe.execute()
