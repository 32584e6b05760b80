"""Admission and commit: the gateway's two Redis round trips per call.

`Admitter.admit` runs `admit.lua` (key, user, agent, rate window, trial, quota reservation in
one atomic call) and maps its verdict to an error or an `Admission`. Cold records (MISS) are
loaded from Postgres by `RecordLoader` and the script is retried; in steady state that never
happens and admission is one EVALSHA. `Admitter.commit` runs `commit.lua` to keep or give
back the reservation and append the usage event.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.exceptions import RedisError

from common import keyspace
from common.db import UNAVAILABLE_ERRORS
from common.errors import ApiError, ErrorCode
from common.feature_flags import FeatureFlags
from common.records import SPEND_FIELD_TTL_MS
from common.redis_store import ScriptSet
from gateway.call_record import hot_record
from gateway.call_result import CallResult
from gateway.hot_redis import HotScripts
from gateway.records import RecordLoader

# A fully cold call: key miss, user miss, agent miss, then the verdict. One spare for a
# record that expired between two attempts.
_MAX_ATTEMPTS = 5
_PLACEHOLDER_USER = "-"
# A record load that fails: Redis away, or Postgres (a cold record is read from it).
_LOAD_ERRORS: tuple[type[Exception], ...] = (RedisError, *UNAVAILABLE_ERRORS)


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    free_per_window: int
    paid_per_window: int
    window_ms: int
    reservation_ms: int
    trial_calls: int


@hot_record
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
    trials_remaining: int = 0  # free trial calls of this developer and agent left

    @classmethod
    def of(cls, call_id: str, shard: int, agent_id: str, reply: list[Any]) -> Admission:
        """From admit.lua's OK reply, read in `AdmitReply.decode`'s order (every admitted
        call: straight into this one object)."""
        return cls(
            call_id, shard, reply[1].decode(), reply[2].decode(), agent_id, int(reply[3]),
            int(reply[4]), int(reply[5]), int(reply[6]), int(reply[7]), reply[8].decode(),
            int(reply[9]), int(reply[10]), int(reply[11]),
        )  # fmt: skip

    @property
    def units_charged(self) -> int:
        """Units this call takes from the quota: none for a free trial call."""
        return self.units if self.charge == "quota" else 0

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The `_CALL_HEADERS`, valued as `_rate_header_values` does (on every answer: as
        bytes formatted at once, not str encoded after)."""
        limit, remaining, reset, quota, units, trials = _RAW_CALL_HEADERS
        return [
            (limit, b"%d" % self.rate_limit),
            (remaining, b"%d" % max(0, self.rate_remaining)),
            (reset, b"%d" % -(-self.rate_reset_ms // 1000)),
            (quota, b"%d" % self.quota_remaining),
            (units, b"%d" % self.units_charged),
            (trials, b"%d" % self.trials_remaining),
        ]


@hot_record
class AdmitReply:
    """admit.lua's reply, decoded here and nowhere else (the script lists the same order)."""

    verdict: str
    user_id: str
    key_id: str
    agent_version: int
    rate_limit: int
    rate_remaining: int
    rate_reset_ms: int
    quota_remaining: int
    charge: str  # "trial" | "quota" when OK, else ""
    units: int
    knowledge_version: int  # 0: nothing to retrieve; -1: the record does not say
    trials_remaining: int

    @classmethod
    def decode(cls, reply: list[Any]) -> AdmitReply:
        return cls(
            reply[0].decode(), reply[1].decode(), reply[2].decode(), int(reply[3]),
            int(reply[4]), int(reply[5]), int(reply[6]), int(reply[7]), reply[8].decode(),
            int(reply[9]), int(reply[10]), int(reply[11]),
        )  # fmt: skip


# What every answer to an admitted or rate-limited call carries.
_RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
                 "x-quota-remaining")  # fmt: skip
# An admitted call's answer also says what it costs: units taken from the quota (0 for a free
# trial call; given back if the call is not billable) and the trial calls left for this agent.
_CALL_HEADERS = (*_RATE_HEADERS, "x-agentlink-units", "x-agentlink-trials-remaining")
_RAW_CALL_HEADERS = tuple(name.encode() for name in _CALL_HEADERS)


def _rate_header_values(limit: int, remaining: int, reset_ms: int, quota: int) -> list[str]:
    reset_s = -(-reset_ms // 1000)  # round up: the window really frees then
    return [str(limit), str(max(0, remaining)), str(reset_s), str(quota)]


class Admitter:
    def __init__(
        self,
        scripts: ScriptSet,
        loader: RecordLoader,
        limits: AdmissionLimits,
        *,
        known_users: int = 100_000,
        flags: FeatureFlags | None = None,
    ) -> None:
        self._admit = scripts["admit"]
        self._admit_sharded = scripts["admit_sharded"]
        self._commit = scripts["commit"]
        self._send_now = scripts.send_now if isinstance(scripts, HotScripts) else None
        self._loader = loader
        self._limits = limits
        self._flags = flags  # enable_trial_mode off: no free trials (admit.lua gets 0)
        # key hash -> owner's user id. Immutable facts, so caching them is always safe;
        # bounded so a flood of distinct keys cannot grow memory.
        self._owner_of_key: OrderedDict[str, str] = OrderedDict()
        self._known_users = known_users
        # The key names of each script, by what they are made of: the same on every call of
        # one key and agent, and ~15 names to format otherwise. Emptied when full.
        self._admit_keys: dict[tuple[int, str, str, str], tuple[str, ...]] = {}
        self._commit_keys: dict[tuple[int, str], tuple[str, ...]] = {}

    def _remember_owner(self, key_hash: str, user_id: str) -> None:
        self._owner_of_key[key_hash] = user_id
        if len(self._owner_of_key) > self._known_users:
            self._owner_of_key.popitem(last=False)

    async def admit(
        self,
        key_hash: str,
        shard: int,
        agent_id: str,
        call_id: str,
        *,
        request_id: str = "",
        agent_fields: Sequence[bytes] | None = None,
    ) -> Admission:
        """`request_id`: the client's, kept in the reservation for the reaper's usage event.
        `agent_fields`: on a Redis Cluster, the agent record's fields as last read, for
        admit_sharded (gateway/sharded_admission.py); None: admit.lua reads the record."""
        limits = self._limits
        trial_calls = limits.trial_calls
        if self._flags is not None and not self._flags.current.enable_trial_mode:
            trial_calls = 0
        user_id = self._owner_of_key.get(key_hash, _PLACEHOLDER_USER)
        args: list[str | int | bytes] = [call_id, agent_id, limits.free_per_window,
                limits.paid_per_window, limits.window_ms, limits.reservation_ms, trial_calls,
                request_id, SPEND_FIELD_TTL_MS["day"], SPEND_FIELD_TTL_MS["month"]]  # fmt: skip
        # Sharded: no key of another slot, the shard's own tag stands in for the agent record.
        sharded = agent_fields is not None
        script = self._admit_sharded if sharded else self._admit
        agent_key = keyspace.shard_tag(shard) if sharded else keyspace.agent_record(agent_id)
        args += agent_fields or ()
        for _ in range(_MAX_ATTEMPTS):
            keys = self._admit_keys.get((shard, key_hash, user_id, agent_key))
            if keys is None:
                keys = _remember(self._admit_keys, (shard, key_hash, user_id, agent_key), (
                    keyspace.api_key_record(shard, key_hash),
                    keyspace.user_record(shard, user_id),
                    keyspace.quota(shard, user_id),
                    keyspace.trials(shard, user_id),
                    keyspace.rate_window(shard, user_id),
                    keyspace.reservations(shard),
                    keyspace.reservation_deadlines(shard),
                    agent_key,
                    keyspace.key_rate_window(shard, key_hash),
                    keyspace.key_spend(shard),
                ))  # fmt: skip
            try:
                reply = await script(keys=keys, args=args)
            except RedisError:
                raise ApiError(ErrorCode.STORAGE_UNAVAILABLE) from None
            if reply[0] == b"OK":
                return Admission.of(call_id, shard, agent_id, reply)
            decoded = AdmitReply.decode(reply)
            verdict = decoded.verdict
            try:
                if verdict == "MISS_KEY":
                    owner = await self._loader.load_key(key_hash, shard)
                    if owner is not None:
                        user_id = owner
                        self._remember_owner(key_hash, owner)
                elif verdict in ("WRONG_USER", "MISS_USER"):
                    user_id = decoded.user_id
                    self._remember_owner(key_hash, user_id)
                    if verdict == "MISS_USER":
                        await self._loader.load_user(user_id, shard)
                elif verdict == "MISS_AGENT":
                    await self._loader.load_agent(agent_id)
                else:
                    raise _refusal(decoded)
            except _LOAD_ERRORS:
                raise ApiError(ErrorCode.STORAGE_UNAVAILABLE) from None
        raise ApiError(ErrorCode.STORAGE_UNAVAILABLE, "Could not load records; try again.")

    def commit_sent(
        self, admission: Admission, result: CallResult, *, latency_ms: int, request_id: str
    ) -> asyncio.Future[Any] | None:
        """`commit`, sent before this returns, as its reply's future: read by a callback,
        no task or coroutine waits for it (gateway/settlement.py). None, nothing sent, when it
        cannot go out at once (not the hot client, or no connection open yet): `commit` then."""
        if self._send_now is None:
            return None
        keys, args = self._commit_call(admission, result, latency_ms, request_id)
        return self._send_now("commit", keys=keys, args=args)

    def commit(
        self, admission: Admission, result: CallResult, *, latency_ms: int, request_id: str
    ) -> Awaitable[bool]:
        """Settle the reservation as `result` says: True, or False if it was already settled
        (or reaped), when awaited. Over HotScripts the command is sent before this returns
        (gateway/hot_redis.py), whenever it is awaited: a retry's task, after a reconnect,
        or the call's own (gateway/settlement.py; `commit_sent` is the common case)."""
        keys, args = self._commit_call(admission, result, latency_ms, request_id)
        return _as_bool(self._commit(keys=keys, args=args))

    def _commit_call(
        self, admission: Admission, result: CallResult, latency_ms: int, request_id: str
    ) -> tuple[tuple[str, ...], list[str | int]]:
        shard, user_id = admission.shard, admission.user_id
        keys = self._commit_keys.get((shard, user_id))
        if keys is None:
            keys = _remember(self._commit_keys, (shard, user_id), (
                keyspace.reservations(shard),
                keyspace.reservation_deadlines(shard),
                keyspace.quota(shard, user_id),
                keyspace.trials(shard, user_id),
                keyspace.usage_stream(shard),
                keyspace.key_spend(shard),
            ))  # fmt: skip
        usage = result.usage
        args: list[str | int] = [
            admission.call_id, "1" if result.billable else "0", result.status,
            usage.input_tokens if usage else 0, usage.output_tokens if usage else 0,
            latency_ms, result.error_code, request_id,
            min(usage.cached_input_tokens, usage.input_tokens) if usage else 0,
        ]  # fmt: skip
        return keys, args


async def _as_bool(reply: Awaitable[Any]) -> bool:
    return bool(await reply)


# Key-name tuples kept per map: a few MB at most, however many keys and users call.
_KEY_NAMES_KEPT = 4096
_K = TypeVar("_K")


def _remember(names: dict[_K, tuple[str, ...]], of: _K, keys: tuple[str, ...]) -> tuple[str, ...]:
    if len(names) >= _KEY_NAMES_KEPT:
        names.clear()
    names[of] = keys
    return keys


def _refusal(reply: AdmitReply) -> ApiError:  # noqa: PLR0911 - one answer per verdict
    verdict = reply.verdict
    if verdict == "BAD_KEY":
        return ApiError(ErrorCode.INVALID_API_KEY)
    if verdict == "SUSPENDED":
        return ApiError(ErrorCode.FORBIDDEN, "This account is suspended.")
    if verdict == "NO_AGENT":
        return ApiError(ErrorCode.AGENT_NOT_FOUND)
    if verdict == "KEY_EXPIRED":
        return ApiError(ErrorCode.INVALID_API_KEY, "This API key has expired.")
    if verdict == "AGENT_NOT_ALLOWED":
        return ApiError(ErrorCode.FORBIDDEN, "This API key is not allowed to call this agent.")
    values = _rate_header_values(
        reply.rate_limit, reply.rate_remaining, reply.rate_reset_ms, reply.quota_remaining
    )
    headers = dict(zip(_RATE_HEADERS, values, strict=True))
    if verdict == "RATE_LIMITED":
        headers["retry-after"] = str(max(1, -(-reply.rate_reset_ms // 1000)))
        return ApiError(ErrorCode.RATE_LIMITED, headers=headers)
    if verdict in ("QUOTA_EXHAUSTED", "KEY_CAP_REACHED"):
        # Retrying cannot help until the developer buys units: tell the OpenAI SDKs (which
        # retry a 429 by default) not to. Only the rate limit says when to come back.
        headers["x-should-retry"] = "false"
        message = "This API key's spend cap is reached." if verdict == "KEY_CAP_REACHED" else None
        return ApiError(ErrorCode.QUOTA_EXHAUSTED, message, headers=headers)
    return ApiError(ErrorCode.INTERNAL)
