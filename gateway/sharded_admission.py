"""Admission on a Redis Cluster (REDIS_CLUSTER): the agent record is read beside the script.

On one Redis, admit.lua reads the key, user and agent records in one atomic call. On a cluster
the agent record `agent:{aID}` lives in the agent's slot, not in the user's `{sS}`, and no
script may touch two slots (DESIGN.md "Scaling past one Redis primary"). So `ShardedAdmitter`
runs `admit_sharded` on the user's shard with the agent's fields as this process last read
them, and reads the record again at the same time (one round trip to each primary, at once).
The rule, when both have answered:

- the fresh read agrees with the fields the call was decided on (status, version, price
  units): the decision stands, admitted or refused. The usual case.
- it disagrees (the agent was unpublished, got a new version or a new price since the last
  read): an admission is taken back (release.lua: its quota units or trial call and its rate
  window entries return, no usage event, as if it had never been made), and the call, admitted
  or refused, is decided again on the fields just read: what one Redis would have answered.
- an agent this process has not read yet is read first (and loaded from Postgres when Redis
  does not have it), then the call is decided: one more round trip per agent and process.
- the fresh read fails (the agent's primary is down): the decision stands on the fields last
  read. The record cannot change meanwhile (the control plane's write to that primary fails
  too), and users whose own shard is up keep being served. An agent never read: 503 50302.
- the knowledge version is the fresh read's (it does not enter the decision).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from redis.exceptions import RedisClusterException, RedisError

from common import keyspace
from common.db import UNAVAILABLE_ERRORS
from common.errors import ApiError, ErrorCode
from common.feature_flags import FeatureFlags
from common.redis_store import ScriptSet
from gateway.admission import Admission, AdmissionLimits, Admitter
from gateway.hot_redis import HotClient
from gateway.records import RecordLoader

AGENT_FIELDS = ("status", "version", "units", "knowledge")  # admit.lua's order
AgentRead = Callable[[str], Awaitable[Sequence[bytes | None]]]
"""HMGET of `AGENT_FIELDS` on the agent record named."""

# A cluster client's own errors (no node holds the slot, say) are not RedisErrors.
_STORAGE_ERRORS: tuple[type[Exception], ...] = (
    RedisError,
    RedisClusterException,
    *UNAVAILABLE_ERRORS,
)


@dataclass(frozen=True, slots=True)
class AgentFields:
    """The agent record as read: admit_sharded's ARGV[11..14]."""

    status: bytes
    version: bytes
    units: bytes
    knowledge: bytes  # b"-1": the record does not say (admit.lua's default)

    @classmethod
    def of(cls, reply: Sequence[bytes | None]) -> AgentFields | None:
        status, version, units, knowledge = reply
        if status is None:
            return None  # no record in Redis
        return cls(status, version or b"", units or b"", b"-1" if knowledge is None else knowledge)

    @property
    def args(self) -> tuple[bytes, bytes, bytes, bytes]:
        return (self.status, self.version, self.units, self.knowledge)

    def decides_like(self, other: AgentFields) -> bool:
        return (self.status, self.version, self.units) == (other.status, other.version, other.units)


class ShardedAdmitter(Admitter):
    """`Admitter` for a Redis Cluster; commit is the same (commit.lua is single-slot)."""

    def __init__(
        self,
        scripts: ScriptSet,
        loader: RecordLoader,
        limits: AdmissionLimits,
        *,
        read_agent: AgentRead,
        known_agents: int = 10_000,
        flags: FeatureFlags | None = None,
        taken_back: Callable[[], object] = lambda: None,
    ) -> None:
        """`taken_back`: called per admission given back (a metric's `inc`)."""
        super().__init__(scripts, loader, limits, flags=flags)
        self._release = scripts["release"]
        self._taken_back = taken_back
        self._read_agent = read_agent
        self._loader = loader
        # agent id -> its fields as last read; bounded like the key owners
        self._agents: OrderedDict[str, AgentFields] = OrderedDict()
        self._known_agents = known_agents

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
        known = self._agents.get(agent_id)
        if known is None:
            known = await self._fresh(agent_id)
            return await super().admit(
                key_hash, shard, agent_id, call_id, request_id=request_id, agent_fields=known.args
            )
        reading = asyncio.ensure_future(self._fresh(agent_id))
        reading.add_done_callback(_retrieved)
        try:
            admission = await super().admit(
                key_hash, shard, agent_id, call_id, request_id=request_id, agent_fields=known.args
            )
        except ApiError as refusal:
            if refusal.code is ErrorCode.STORAGE_UNAVAILABLE:
                reading.cancel()
                raise
            fresh = await self._settled(reading, known)
            if fresh.decides_like(known):
                raise
        except BaseException:  # cancelled (the client left, shutdown): the read is moot
            reading.cancel()
            raise
        else:
            fresh = await self._settled(reading, known)
            if fresh.decides_like(known):
                if fresh.knowledge == known.knowledge:
                    return admission
                return dataclasses.replace(admission, knowledge_version=int(fresh.knowledge))
            await self._take_back(admission, key_hash)
        return await super().admit(
            key_hash, shard, agent_id, call_id, request_id=request_id, agent_fields=fresh.args
        )

    async def _fresh(self, agent_id: str) -> AgentFields:
        """The agent record as Redis has it now (loaded from Postgres if Redis has none)."""
        record = keyspace.agent_record(agent_id)
        for _ in range(2):
            try:
                fields = AgentFields.of(await self._read_agent(record))
                if fields is not None:
                    self._remember(agent_id, fields)
                    return fields
                await self._loader.load_agent(agent_id)
            except _STORAGE_ERRORS:
                raise ApiError(ErrorCode.STORAGE_UNAVAILABLE) from None
        raise ApiError(ErrorCode.STORAGE_UNAVAILABLE, "Could not load records; try again.")

    async def _settled(
        self, reading: asyncio.Future[AgentFields], known: AgentFields
    ) -> AgentFields:
        try:
            return await reading
        except ApiError:
            return known  # the agent's primary is away: the last read stands (module docstring)

    def _remember(self, agent_id: str, fields: AgentFields) -> None:
        self._agents[agent_id] = fields
        self._agents.move_to_end(agent_id)
        if len(self._agents) > self._known_agents:
            self._agents.popitem(last=False)

    async def _take_back(self, admission: Admission, key_hash: str) -> None:
        shard, user_id = admission.shard, admission.user_id
        keys = [
            keyspace.reservations(shard),
            keyspace.reservation_deadlines(shard),
            keyspace.quota(shard, user_id),
            keyspace.trials(shard, user_id),
            keyspace.key_spend(shard),
            keyspace.rate_window(shard, user_id),
            keyspace.key_rate_window(shard, key_hash),
        ]
        try:
            await self._release(keys=keys, args=[admission.call_id])
        except _STORAGE_ERRORS:
            # The reservation stays: the reaper gives it back at its deadline.
            raise ApiError(ErrorCode.STORAGE_UNAVAILABLE) from None
        self._taken_back()


def _retrieved(reading: asyncio.Future[AgentFields]) -> None:
    """A read nobody awaits any more (cancelled, or its admission failed) leaves no
    "exception was never retrieved" behind."""
    if not reading.cancelled():
        reading.exception()


def agent_read(client: HotClient) -> AgentRead:
    """`AgentRead` over the hot path's client (on a cluster: the agent's primary)."""

    async def read(record: str) -> Sequence[bytes | None]:
        fields: Sequence[bytes | None] = await client.execute_on(
            record, "HMGET", record, *AGENT_FIELDS
        )
        return fields

    return read
