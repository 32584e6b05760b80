"""The migration runner, on empty databases of its own.

Each test copies `migrations/` to a temporary folder when it needs to change files, so the
real folder is never touched.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from common.migrations import MigrationError, default_directory, load_migrations, migrate_url
from tests.processes import Servers

ALL_NAMES = [f"{m.version:04d}_{m.name}" for m in load_migrations(default_directory())]
VERSIONS = [int(name[:4]) for name in ALL_NAMES]


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(default_directory(), target)
    return target


async def _fetch(url: str, query: str, *args: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch(query, *args)
    finally:
        await connection.close()


async def _fetchval(url: str, query: str, *args: object) -> object:
    rows = await _fetch(url, query, *args)
    return rows[0][0] if rows else None


async def _history(url: str) -> list[tuple[int, str]]:
    rows = await _fetch(url, "SELECT version, name FROM schema_migrations ORDER BY version")
    return [(row["version"], row["name"]) for row in rows]


def test_the_real_folder_is_well_formed() -> None:
    assert ALL_NAMES, "there are migrations"
    assert ALL_NAMES[0] == "0001_initial_schema"
    versions = [int(name[:4]) for name in ALL_NAMES]
    # Numbers are handed out to work landing in parallel, so one may land before a lower one
    # (a gap for a while); they still never repeat and the runner applies them in order.
    assert versions == sorted(set(versions)), "versions are unique and increasing"


async def test_applies_every_file_in_order_with_checksums(scratch_database_url: str) -> None:
    applied = await migrate_url(scratch_database_url)

    assert applied == ALL_NAMES
    rows = await _fetch(
        scratch_database_url, "SELECT version, name, checksum FROM schema_migrations"
    )
    on_disk = {m.version: m for m in load_migrations(default_directory())}
    assert {row["version"] for row in rows} == set(on_disk)
    for row in rows:
        assert row["name"] == on_disk[row["version"]].name
        assert row["checksum"] == on_disk[row["version"]].checksum
    for table in ("users", "agents", "call_logs", "knowledge_chunks", "feature_flags"):
        assert await _fetchval(scratch_database_url, "SELECT to_regclass($1)::text", table)


async def test_a_second_run_applies_nothing(scratch_database_url: str) -> None:
    await migrate_url(scratch_database_url)
    before = await _fetch(scratch_database_url, "SELECT * FROM schema_migrations")

    assert await migrate_url(scratch_database_url) == []
    assert await _fetch(scratch_database_url, "SELECT * FROM schema_migrations") == before


async def test_only_new_files_are_applied(scratch_database_url: str, migrations_copy: Path) -> None:
    await migrate_url(scratch_database_url, migrations_copy)
    next_version = int(ALL_NAMES[-1][:4]) + 1
    (migrations_copy / f"{next_version:04d}_add_widgets.sql").write_text(
        "CREATE TABLE widgets (id int PRIMARY KEY);"
    )

    assert await migrate_url(scratch_database_url, migrations_copy) == [
        f"{next_version:04d}_add_widgets"
    ]
    assert await _fetchval(scratch_database_url, "SELECT to_regclass('widgets')::text")


async def test_a_changed_applied_file_is_refused_before_anything_new_is_applied(
    scratch_database_url: str, migrations_copy: Path
) -> None:
    await migrate_url(scratch_database_url, migrations_copy)
    first = migrations_copy / f"{ALL_NAMES[0]}.sql"
    first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")
    (migrations_copy / "9000_later.sql").write_text("CREATE TABLE later (id int);")

    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate_url(scratch_database_url, migrations_copy)
    assert await _fetchval(scratch_database_url, "SELECT to_regclass('later')") is None
    assert (9000, "later") not in await _history(scratch_database_url)


async def test_an_applied_version_missing_on_disk_is_refused(
    scratch_database_url: str, migrations_copy: Path
) -> None:
    await migrate_url(scratch_database_url, migrations_copy)
    (migrations_copy / f"{ALL_NAMES[-1]}.sql").unlink()

    with pytest.raises(MigrationError, match="missing on disk"):
        await migrate_url(scratch_database_url, migrations_copy)


@pytest.mark.parametrize(
    "bad_name",
    ["1_short_version.sql", "0009_Upper_Case.sql", "0009-dashes.sql", "0009_with-dash.sql"],
)
async def test_a_badly_named_file_is_refused_before_touching_the_database(
    scratch_database_url: str, migrations_copy: Path, bad_name: str
) -> None:
    (migrations_copy / bad_name).write_text("CREATE TABLE never (id int);")

    with pytest.raises(MigrationError, match="NNNN_lower_snake"):
        await migrate_url(scratch_database_url, migrations_copy)
    assert await _fetchval(scratch_database_url, "SELECT to_regclass('schema_migrations')") is None


async def test_two_files_sharing_a_version_are_refused(
    scratch_database_url: str, migrations_copy: Path
) -> None:
    (migrations_copy / "0001_another_first.sql").write_text("SELECT 1;")

    with pytest.raises(MigrationError, match="share version"):
        await migrate_url(scratch_database_url, migrations_copy)


async def test_concurrent_runners_apply_each_file_exactly_once(
    scratch_database_url: str, migrations_copy: Path
) -> None:
    # A file that is not idempotent: applying it twice would fail or leave two rows.
    next_version = int(ALL_NAMES[-1][:4]) + 1
    (migrations_copy / f"{next_version:04d}_count_runs.sql").write_text(
        "CREATE TABLE runs (n int); INSERT INTO runs VALUES (1);"
    )

    results = await asyncio.gather(
        *(migrate_url(scratch_database_url, migrations_copy) for _ in range(3))
    )

    expected = [*ALL_NAMES, f"{next_version:04d}_count_runs"]
    assert sorted(results, key=len) == [[], [], expected]
    assert await _fetchval(scratch_database_url, "SELECT count(*) FROM runs") == 1
    assert [f"{v:04d}_{n}" for v, n in await _history(scratch_database_url)] == expected


async def test_a_failing_file_leaves_no_partial_schema_and_no_history_row(
    scratch_database_url: str, migrations_copy: Path
) -> None:
    await migrate_url(scratch_database_url, migrations_copy)
    next_version = int(ALL_NAMES[-1][:4]) + 1
    broken = migrations_copy / f"{next_version:04d}_half_done.sql"
    broken.write_text(
        "CREATE TABLE half_done (id int);\n"
        "ALTER TABLE users ADD COLUMN half_done_flag boolean;\n"
        "SELECT 1 / 0;\n"
    )

    with pytest.raises(asyncpg.DivisionByZeroError):
        await migrate_url(scratch_database_url, migrations_copy)

    assert await _fetchval(scratch_database_url, "SELECT to_regclass('half_done')") is None
    column = await _fetchval(
        scratch_database_url,
        "SELECT count(*) FROM information_schema.columns"
        " WHERE table_name = 'users' AND column_name = 'half_done_flag'",
    )
    assert column == 0
    assert [v for v, _ in await _history(scratch_database_url)] == VERSIONS

    # Fixed (never applied, so editing it is allowed): the next run applies just that file.
    broken.write_text("CREATE TABLE half_done (id int);\n")
    assert await migrate_url(scratch_database_url, migrations_copy) == [
        f"{next_version:04d}_half_done"
    ]


async def test_a_failing_file_stops_the_files_after_it(
    scratch_database_url: str, migrations_copy: Path
) -> None:
    (migrations_copy / "9001_fails.sql").write_text("SELECT no_such_function();")
    (migrations_copy / "9002_after.sql").write_text("CREATE TABLE after_failure (id int);")

    with pytest.raises(asyncpg.UndefinedFunctionError):
        await migrate_url(scratch_database_url, migrations_copy)

    history = [v for v, _ in await _history(scratch_database_url)]
    assert history == VERSIONS
    assert await _fetchval(scratch_database_url, "SELECT to_regclass('after_failure')") is None


# --- the same files on a server without pgvector ------------------------------------------


@pytest.fixture
async def unprivileged_database_url(
    servers: Servers, scratch_database_url: str
) -> AsyncIterator[str]:
    """The scratch database, owned by (and reached as) a new role that is not a superuser.

    pgvector is not a trusted extension, so such a role cannot create it: the migrations
    meet exactly the failure a server without pgvector produces, and must still apply.
    """
    admin = await asyncpg.connect(servers.postgres_url)
    try:
        if not await admin.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
            pytest.skip("needs a superuser to create a role")
        role = f"t_owner_{uuid.uuid4().hex[:10]}"
        password = uuid.uuid4().hex
        database = urlsplit(scratch_database_url).path.lstrip("/")
        await admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER PASSWORD '{password}'")
        await admin.execute(f'ALTER DATABASE "{database}" OWNER TO {role}')
        parts = urlsplit(scratch_database_url)
        host = parts.netloc.rsplit("@", 1)[-1]
        yield urlunsplit(parts._replace(netloc=f"{role}:{password}@{host}"))
        await admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        await admin.execute(f"DROP ROLE {role}")
    finally:
        await admin.close()


async def test_without_pgvector_the_embedding_falls_back_to_a_real_array(
    unprivileged_database_url: str,
) -> None:
    url = unprivileged_database_url
    assert await migrate_url(url) == ALL_NAMES

    assert await _fetchval(url, "SELECT count(*) FROM pg_extension WHERE extname = 'vector'") == 0
    column_type = await _fetchval(
        url,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'knowledge_chunks'::regclass AND attname = 'embedding'",
    )
    assert column_type == "real[]"

    connection = await asyncpg.connect(url)
    try:
        creator = await connection.fetchval(
            "INSERT INTO users (email, password_hash, user_type, redis_shard)"
            " VALUES ('fallback@example.com', 'h', 'creator', 1) RETURNING id"
        )
        agent = await connection.fetchval(
            "INSERT INTO agents (creator_id, name, config_encrypted, config_key_id,"
            " price_per_call) VALUES ($1, 'a', $2, 'k1', 0.01) RETURNING id",
            creator,
            bytes(64),
        )
        file_id = await connection.fetchval(
            "INSERT INTO knowledge_files (agent_id, filename, file_type, file_size,"
            " storage_key, content_sha256) VALUES ($1, 'f.txt', 'txt', 1, $2, $3) RETURNING id",
            agent,
            f"kb/{uuid.uuid4()}",
            "0" * 64,
        )
        insert = (
            "INSERT INTO knowledge_chunks (agent_id, file_id, chunk_index, content, embedding)"
            " VALUES ($1, $2, $3, 'text', $4)"
        )
        await connection.execute(insert, agent, file_id, 0, [0.5] * 384)
        with pytest.raises(asyncpg.CheckViolationError) as refused:
            await connection.execute(insert, agent, file_id, 1, [0.5] * 3)
        assert refused.value.constraint_name == "knowledge_chunks_embedding_dimensions"
    finally:
        await connection.close()
