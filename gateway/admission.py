"""Admission and commit: the gateway's two Redis round trips per call.

`Admitter.admit` runs `admit.lua` (key, user, agent, rate window, trial, quota reservation in
one atomic call) and maps its verdict to an error or an `Admission`. Cold records (MISS) are
loaded from Postgres by `RecordLoader` and the script is retried; in steady state that never
happens and admission is one EVALSHA. `Admitter.commit` runs `commit.lua` to keep or give
back the reservation and append the usage event.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from redis.exceptions import RedisError

from common import keyspace
from common.errors import ApiError, ErrorCode
from common.redis_store import ScriptSet
from gateway.records import RecordLoader

# A fully cold call: key miss, user miss, agent miss, then the verdict. One spare for a
# record that expired between two attempts.
_MAX_ATTEMPTS = 5
_PLACEHOLDER_USER = "-"


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    free_per_window: int
    paid_per_window: int
    window_ms: int
    reservation_ms: int
    trial_calls: int


@dataclass(frozen=True, slots=True)
class Admission:
    call_id: str
    shard: int
    user_id: str
    key_id: str
    agent_id: str
    agent_version: int
    rate_limit: int
    rate_remaining: int
    rate_reset_ms: int
    quota_remaining: int
    charge: str
    units: int
    # The agent's knowledge version: 0 = nothing to retrieve; -1 = the record does not say.
    knowledge_version: int = 0

    def headers(self) -> list[tuple[bytes, bytes]]:
        reset_s = -(-self.rate_reset_ms // 1000)  # round up: the window really frees then
        return [
            (b"x-ratelimit-limit", str(self.rate_limit).encode()),
            (b"x-ratelimit-remaining", str(max(0, self.rate_remaining)).encode()),
            (b"x-ratelimit-reset", str(reset_s).encode()),
            (b"x-quota-remaining", str(self.quota_remaining).encode()),
        ]


def _rate_headers(limit: int, remaining: int, reset_ms: int, quota: int) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(-(-reset_ms // 1000)),
        "X-Quota-Remaining": str(quota),
    }


class Admitter:
    def __init__(
        self,
        scripts: ScriptSet,
        loader: RecordLoader,
        limits: AdmissionLimits,
        *,
        known_users: int = 100_000,
    ) -> None:
        self._admit = scripts["admit"]
        self._commit = scripts["commit"]
        self._loader = loader
        self._limits = limits
        # key hash -> owner's user id. Immutable facts, so caching them is always safe;
        # bounded so a flood of distinct keys cannot grow memory.
        self._owner_of_key: OrderedDict[str, str] = OrderedDict()
        self._known_users = known_users

    def _remember_owner(self, key_hash: str, user_id: str) -> None:
        self._owner_of_key[key_hash] = user_id
        if len(self._owner_of_key) > self._known_users:
            self._owner_of_key.popitem(last=False)

    async def admit(self, key_hash: str, shard: int, agent_id: str, call_id: str) -> Admission:
        limits = self._limits
        user_id = self._owner_of_key.get(key_hash, _PLACEHOLDER_USER)
        args: list[str | int] = [call_id, agent_id, limits.free_per_window, limits.paid_per_window,
                limits.window_ms, limits.reservation_ms, limits.trial_calls]  # fmt: skip
        for _ in range(_MAX_ATTEMPTS):
            keys = [
                keyspace.api_key_record(shard, key_hash),
                keyspace.user_record(shard, user_id),
                keyspace.quota(shard, user_id),
                keyspace.trials(shard, user_id),
                keyspace.rate_window(shard, user_id),
                keyspace.reservations(shard),
                keyspace.reservation_deadlines(shard),
                keyspace.agent_record(agent_id),
            ]
            try:
                reply = await self._admit(keys=keys, args=args)
            except RedisError:
                raise ApiError(ErrorCode.STORAGE_UNAVAILABLE) from None
            verdict = reply[0].decode()
            if verdict == "OK":
                return Admission(
                    call_id=call_id,
                    shard=shard,
                    user_id=reply[1].decode(),
                    key_id=reply[2].decode(),
                    agent_id=agent_id,
                    agent_version=int(reply[3]),
                    rate_limit=int(reply[4]),
                    rate_remaining=int(reply[5]),
                    rate_reset_ms=int(reply[6]),
                    quota_remaining=int(reply[7]),
                    charge=reply[8].decode(),
                    units=int(reply[9]),
                    knowledge_version=int(reply[10]),
                )
            try:
                if verdict == "MISS_KEY":
                    owner = await self._loader.load_key(key_hash, shard)
                    if owner is not None:
                        user_id = owner
                        self._remember_owner(key_hash, owner)
                elif verdict in ("WRONG_USER", "MISS_USER"):
                    user_id = reply[1].decode()
                    self._remember_owner(key_hash, user_id)
                    if verdict == "MISS_USER":
                        await self._loader.load_user(user_id, shard)
                elif verdict == "MISS_AGENT":
                    await self._loader.load_agent(agent_id)
                else:
                    raise _refusal(verdict, reply)
            except (RedisError, OSError):
                raise ApiError(ErrorCode.STORAGE_UNAVAILABLE) from None
        raise ApiError(ErrorCode.STORAGE_UNAVAILABLE, "Could not load records; try again.")

    async def commit(
        self,
        admission: Admission,
        *,
        billable: bool,
        status: str,
        input_tokens: int,
        output_tokens: int,
        latency_ms: int,
        error_code: str,
        request_id: str,
    ) -> bool:
        """Settle the reservation. False if it was already settled (or reaped)."""
        shard, user_id = admission.shard, admission.user_id
        keys = [
            keyspace.reservations(shard),
            keyspace.reservation_deadlines(shard),
            keyspace.quota(shard, user_id),
            keyspace.trials(shard, user_id),
            keyspace.usage_stream(shard),
        ]
        args: list[str | int] = [admission.call_id, "1" if billable else "0", status, input_tokens,
                output_tokens, latency_ms, error_code, request_id]  # fmt: skip
        settled = await self._commit(keys=keys, args=args)
        return bool(settled)


def _refusal(verdict: str, reply: list[bytes]) -> ApiError:
    if verdict == "BAD_KEY":
        return ApiError(ErrorCode.INVALID_API_KEY)
    if verdict == "SUSPENDED":
        return ApiError(ErrorCode.FORBIDDEN, "This account is suspended.")
    if verdict == "NO_AGENT":
        return ApiError(ErrorCode.AGENT_NOT_FOUND)
    limit, remaining, reset_ms, quota = int(reply[4]), int(reply[5]), int(reply[6]), int(reply[7])
    headers = _rate_headers(limit, remaining, reset_ms, quota)
    if verdict == "RATE_LIMITED":
        headers["Retry-After"] = str(max(1, -(-reset_ms // 1000)))
        return ApiError(ErrorCode.RATE_LIMITED, headers=headers)
    if verdict == "QUOTA_EXHAUSTED":
        return ApiError(ErrorCode.QUOTA_EXHAUSTED, headers=headers)
    return ApiError(ErrorCode.INTERNAL)
