"""Re-encrypt every stored agent config with the active encryption key.

Rotation without downtime: (1) add the new key to AGENTLINK_ENCRYPTION_KEYS and make it
active everywhere (old keys still decrypt), (2) run `python -m control_plane.rotate_keys`,
(3) remove the old key once this reports nothing left. Safe to re-run and to interrupt:
it works in small transactions over rows whose `config_key_id` is not the active key, with
`FOR UPDATE SKIP LOCKED` so it never blocks (or is blocked by) a creator's update.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass

import asyncpg

from common.settings import env_str
from crypto.envelope import KeyRing

_TABLES = {
    # table: how to find a row again, and which (agent id, version) the envelope is bound to
    "agents": ("id", "id", "version"),
    "agent_versions": ("id", "agent_id", "version"),
}


@dataclass(frozen=True, slots=True)
class RotationReport:
    reencrypted: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.reencrypted.values())


async def rotate(db: asyncpg.Pool, keyring: KeyRing, *, batch_size: int = 200) -> RotationReport:
    counts: dict[str, int] = {}
    for table, (row_id, agent_column, version_column) in _TABLES.items():
        counts[table] = 0
        while True:
            async with db.acquire() as connection, connection.transaction():
                rows = await connection.fetch(
                    f"""SELECT {row_id} AS row_id, {agent_column} AS agent_id,
                               {version_column} AS version, config_encrypted
                        FROM {table} WHERE config_key_id <> $1
                        LIMIT $2 FOR UPDATE SKIP LOCKED""",  # noqa: S608 - names from _TABLES
                    keyring.active_key_id,
                    batch_size,
                )
                if not rows:
                    break
                updates = [
                    (
                        row["row_id"],
                        keyring.reencrypt(
                            row["config_encrypted"],
                            agent_id=str(row["agent_id"]),
                            version=row["version"],
                        ),
                    )
                    for row in rows
                ]
                await connection.executemany(
                    f"UPDATE {table} SET config_encrypted = $2, config_key_id = $3 "  # noqa: S608
                    f"WHERE {row_id} = $1",
                    [(row_id_value, envelope, keyring.active_key_id)
                     for row_id_value, envelope in updates],
                )  # fmt: skip
                counts[table] += len(rows)
    return RotationReport(counts)


async def _main() -> int:
    env = os.environ
    keys, active = (
        env_str(env, "AGENTLINK_ENCRYPTION_KEYS"),
        env_str(env, "AGENTLINK_ENCRYPTION_ACTIVE_KEY_ID"),
    )
    keyring = KeyRing.from_env(keys, active)
    db = await asyncpg.create_pool(env_str(env, "DATABASE_URL"), min_size=1, max_size=2)
    try:
        report = await rotate(db, keyring)
    finally:
        await db.close()
    for table, count in report.reencrypted.items():
        print(f"{table}: {count} re-encrypted with key {keyring.active_key_id}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main()))
