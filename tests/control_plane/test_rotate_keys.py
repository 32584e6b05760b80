"""Key rotation re-encrypts every config with the active key, and old envelopes stay
readable until then (no downtime)."""

from __future__ import annotations

import asyncpg

from common.db import create_pool
from common.domain import AgentConfig
from common.migrations import migrate_url
from control_plane.rotate_keys import rotate
from crypto.envelope import KeyRing, generate_key
from tests.factories import make_agent


async def test_rotation_reencrypts_all_configs_and_is_idempotent(scratch_database_url: str) -> None:
    # A database of its own: rotation touches every row, including other tests' agents.
    await migrate_url(scratch_database_url)
    db_pool = await create_pool(scratch_database_url)
    try:
        await _rotate_and_check(db_pool)
    finally:
        await db_pool.close()


async def _rotate_and_check(db_pool: asyncpg.Pool) -> None:
    old_spec = f"old:{generate_key()}"
    old_ring = KeyRing.from_env(old_spec, "old")
    agents = [
        await make_agent(db_pool, system_prompt=f"prompt {i}", keyring=old_ring) for i in range(3)
    ]
    new_spec = f"new:{generate_key()}"
    both = KeyRing.from_env(f"{old_spec},{new_spec}", "new")

    first = await rotate(db_pool, both, batch_size=2)
    assert first.reencrypted["agents"] >= 3
    assert first.reencrypted["agent_versions"] >= 3
    again = await rotate(db_pool, both)
    assert again.total == 0

    new_only = KeyRing.from_env(new_spec, "new")  # the old key can now be retired
    for agent in agents:
        for table, id_column in (("agents", "id"), ("agent_versions", "agent_id")):
            row = await db_pool.fetchrow(
                f"SELECT config_encrypted, config_key_id FROM {table} WHERE {id_column} = $1",
                agent.agent_id,
            )
            assert row["config_key_id"] == "new"
            envelope = row["config_encrypted"]
            plaintext = new_only.decrypt(envelope, agent_id=agent.agent_id, version=1)
            assert AgentConfig.from_json(plaintext) == agent.config
