"""Cold records: load a key, user or agent from Postgres into Redis when admission says MISS.

This is the only place the gateway touches Postgres on the request path, and only when Redis
does not know a record yet. Loads are single-flight per record and process: a thousand
concurrent requests for one cold key cause one query. Unknown keys and agents are cached as
`unknown` for a short while, so a flood of bad keys cannot hammer Postgres.

Writes never overwrite live state: the quota balance is set only if absent (load_quota.lua) and
trial counters only if absent (HSETNX), because Redis holds the live values and Postgres catches up
through the usage stream.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import asyncpg
from redis.exceptions import NoScriptError

from common import keyspace
from common.knowledge.records import KNOWLEDGE_RECORD
from common.records import (
    KEY_CONTROL_COLUMNS,
    SPEND_FIELD_TTL_MS,
    AgentRecord,
    KeyControls,
    KeyRecord,
    UserRecord,
    UserSession,
    key_controls_of,
    spend_bucket,
    spend_bucket_start,
)
from common.redis_store import LuaScripts, RedisClient, queue_script
from common.validation import is_uuid
from gateway.single_flight import SingleFlight


class RecordLoader:
    def __init__(
        self,
        db: asyncpg.Pool,
        redis: RedisClient,
        scripts: LuaScripts,
        unit_price: Decimal,
    ) -> None:
        self._db = db
        self._redis = redis
        self._fill = scripts["fill_record"]
        self._load_quota = scripts["load_quota"]
        self._unit_price = unit_price
        self._key_loads: SingleFlight[str | None] = SingleFlight()
        self._user_loads: SingleFlight[None] = SingleFlight()
        self._agent_loads: SingleFlight[None] = SingleFlight()
        self.queries = 0  # Postgres round trips made; tests and metrics read it

    async def load_key(self, key_hash: str, shard: int) -> str | None:
        """Load a key record; returns its owner's user id (None for an unknown key)."""
        return await self._key_loads.run(key_hash, lambda: self._load_key(key_hash, shard))

    async def load_user(self, user_id: str, shard: int) -> None:
        await self._user_loads.run(user_id, lambda: self._load_user(user_id, shard))

    async def load_agent(self, agent_id: str) -> None:
        await self._agent_loads.run(agent_id, lambda: self._load_agent(agent_id))

    async def _load_key(self, key_hash: str, shard: int) -> str | None:
        record = keyspace.api_key_record(shard, key_hash)
        # The MISS that sent us here may be stale: admission ran before a load that finished
        # since then filled the record. Then Postgres need not be asked again.
        status, owner = await self._redis.hmget(record, ["status", "user"])
        if status is not None:
            return owner.decode() if isinstance(owner, bytes) else None
        self.queries += 1
        row = await self._db.fetchrow(
            f"""SELECT k.id, k.user_id, k.revoked_at IS NOT NULL AS revoked, u.redis_shard,
                       {KEY_CONTROL_COLUMNS}, now() AS now
                FROM api_keys k JOIN users u ON u.id = k.user_id
                WHERE k.key_hash = $1""",  # noqa: S608 - a constant column list
            key_hash,
        )
        if row is None or row["redis_shard"] != shard:
            # A key whose hash names another shard than its owner's was not made by us.
            await self._fill_record(record, KeyRecord.unknown())
            return None
        user_id = str(row["user_id"])
        controls = key_controls_of(row)
        if controls.cap:
            await self._load_key_spend(shard, user_id, str(row["id"]), controls, row["now"])
        key = KeyRecord.of(
            user_id=user_id, key_id=str(row["id"]), revoked=row["revoked"], controls=controls
        )
        await self._fill_record(record, key)
        return user_id

    async def _load_key_spend(
        self, shard: int, user_id: str, key_id: str, controls: KeyControls, now: datetime
    ) -> None:
        """A capped key's spend in its current bucket, from call_logs, unless Redis has it
        (Redis is live; call_logs lag behind the usage stream)."""
        period = controls.cap_period
        self.queries += 1
        spent = await self._db.fetchval(
            """SELECT coalesce(sum(units), 0) FROM call_logs
               WHERE user_id = $1 AND api_key_id = $2 AND billable AND created_at >= $3""",
            user_id, key_id, spend_bucket_start(period, now),
        )  # fmt: skip
        field = f"{key_id}:{spend_bucket(period, now)}"
        spend = keyspace.key_spend(shard)
        await self._redis.hsetnx(spend, field, int(spent))
        if ttl := SPEND_FIELD_TTL_MS.get(period):
            await self._redis.hpexpire(spend, ttl, field, nx=True)

    async def _load_user(self, user_id: str, shard: int) -> None:
        record, quota = keyspace.user_record(shard, user_id), keyspace.quota(shard, user_id)
        if await self._redis.exists(record, quota) == 2:
            return  # filled since the MISS (see _load_key)
        self.queries += 1
        async with self._db.acquire() as connection:
            user = await connection.fetchrow(
                """SELECT u.status, u.rate_tier, u.user_type, u.admin_role, u.token_generation,
                          COALESCE(q.total_quota + q.free_quota - q.used_quota, 0) AS balance,
                          COALESCE(q.adjust_seq, 0) AS adjust_seq
                   FROM users u LEFT JOIN quotas q ON q.user_id = u.id
                   WHERE u.id = $1""",
                user_id,
            )
            trials = await connection.fetch(
                "SELECT agent_id, calls_used FROM trial_usage WHERE user_id = $1", user_id
            )
        session = None
        if user is None:
            user_status, tier, balance, seq = "deleted", "free", 0, 0
        else:
            user_status, tier = user["status"], user["rate_tier"]
            balance, seq = max(0, user["balance"]), user["adjust_seq"]
            # The control plane checks access tokens against these (control_plane/auth).
            session = UserSession(user["user_type"], user["admin_role"], user["token_generation"])
        adjustments = keyspace.quota_adjustments(shard, user_id)
        trial_key = keyspace.trials(shard, user_id)
        for attempt in range(2):
            async with self._redis.pipeline(transaction=True) as pipe:
                # With the adjust_seq of the same snapshot, so a purchase credited concurrently
                # is counted exactly once (common/lua/adjust_quota.lua). Both only set what is
                # absent, so a redo after NOSCRIPT (with EVAL) changes nothing the first did.
                queue_script(pipe, self._load_quota, [quota, adjustments], [balance, seq],
                             load=attempt == 1)  # fmt: skip
                for row in trials:
                    pipe.hsetnx(trial_key, str(row["agent_id"]), row["calls_used"])
                replies: list[object] = await pipe.execute(raise_on_error=False)
            if attempt == 0 and isinstance(replies[0], NoScriptError):
                continue
            if failed := next((r for r in replies if isinstance(r, Exception)), None):
                raise failed
            break
        await self._fill_record(record, UserRecord(user_status, tier, session))

    async def _load_agent(self, agent_id: str) -> None:
        record = keyspace.agent_record(agent_id)
        if await self._redis.exists(record):
            return  # filled since the MISS (see _load_key)
        row = None
        if is_uuid(agent_id):
            self.queries += 1
            row = await self._db.fetchrow(
                f"SELECT status, version, price_per_call, {KNOWLEDGE_RECORD} FROM agents"  # noqa: S608
                " WHERE id = $1",
                agent_id,
            )
        if row is None:
            await self._fill_record(record, AgentRecord.unknown())
            return
        agent = AgentRecord.priced(
            status=row["status"], version=row["version"], price_per_call=row["price_per_call"],
            unit_price=self._unit_price, knowledge=row["knowledge_record"],
        )  # fmt: skip
        await self._fill_record(record, agent)

    async def _fill_record(self, name: str, record: KeyRecord | UserRecord | AgentRecord) -> None:
        args: list[str | int] = [record.ttl_s]
        for field, value in record.to_fields().items():
            args += [field, value]
        await self._fill(keys=[name], args=args)
