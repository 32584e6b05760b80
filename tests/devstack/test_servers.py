"""The embedded servers the stack and the tests run on: start, persist, restart, stop."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis

from devstack.servers import PostgresServer, ValkeyServer, free_port


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="agentlink-servers-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_durable_postgres_keeps_data_across_restarts(workdir: Path) -> None:
    server = PostgresServer(workdir / "pg", free_port(), durable=True)

    async def write() -> None:
        connection = await asyncpg.connect(server.url)
        await connection.execute("CREATE TABLE kept (value TEXT); INSERT INTO kept VALUES ('yes')")
        await connection.close()

    async def read() -> str:
        connection = await asyncpg.connect(server.url)
        value: str = await connection.fetchval("SELECT value FROM kept")
        await connection.close()
        return value

    server.start()
    try:
        asyncio.run(write())
    finally:
        server.stop()
    assert server.process is None
    server.start()
    try:
        assert asyncio.run(read()) == "yes"
    finally:
        server.stop()


def test_durable_valkey_keeps_data_across_restarts_and_lua_works(workdir: Path) -> None:
    server = ValkeyServer(workdir / "valkey", free_port(), durable=True)
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("kept", "yes")
        client.close()
        server.restart()
        client = redis.Redis.from_url(server.url)
        assert client.get("kept") == b"yes"
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        seconds, micros = client.eval("return redis.call('TIME')", 0)  # type: ignore[misc]
        assert int(seconds) > 1_700_000_000
        assert 0 <= int(micros) < 1_000_000
        client.close()
    finally:
        server.stop()


def test_a_throwaway_valkey_starts_empty_after_restart(workdir: Path) -> None:
    server = ValkeyServer(workdir / "valkey", free_port(), durable=False)
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("gone", "1")
        client.close()
        server.restart()
        client = redis.Redis.from_url(server.url)
        assert client.get("gone") is None
        client.close()
    finally:
        server.stop()
