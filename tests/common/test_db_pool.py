"""The pool's session reset (common/db.create_pool): the gateway's pool skips it, a round trip
to Postgres per borrowed connection, i.e. per knowledge call."""

from __future__ import annotations

import pytest

from common.db import create_pool


@pytest.mark.parametrize("reset_sessions", [True, False])
async def test_a_released_connection_is_reset_only_when_asked(
    database_url: str, reset_sessions: bool
) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1, reset_sessions=reset_sessions)
    try:
        async with pool.acquire() as connection:
            backend = await connection.fetchval("SELECT pg_backend_pid()")
            await connection.execute("SET application_name = 'left-behind'")
        async with pool.acquire() as connection:
            # The same session (one connection in the pool), reset or not.
            assert await connection.fetchval("SELECT pg_backend_pid()") == backend
            name = await connection.fetchval("SHOW application_name")
        assert (name == "left-behind") is not reset_sessions
    finally:
        await pool.close()


async def test_an_open_transaction_is_rolled_back_without_the_reset(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1, reset_sessions=False)
    try:
        connection = await pool.acquire()
        await connection.transaction().start()
        await connection.execute("CREATE TEMPORARY TABLE left_open (n int)")
        # Released inside its transaction (a cancelled caller): asyncpg rolls it back.
        await pool.release(connection)
        async with pool.acquire() as connection:
            exists = await connection.fetchval("SELECT to_regclass('pg_temp.left_open')")
            assert exists is None
            assert not connection.is_in_transaction()
    finally:
        await pool.close()
