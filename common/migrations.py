"""Apply the numbered SQL files in `migrations/` to a database, once each, in order.

- Files are `NNNN_description.sql`; each runs in its own transaction together with the row
  that records it in `schema_migrations` (version, name, SHA-256 checksum, applied_at).
- A session-level advisory lock serialises runners, so pods starting together cannot race.
- An applied file whose content changed, or an applied version missing on disk, stops the run:
  history is append-only, a fix is a new file.

Run it with `python -m common.migrations [DATABASE_URL]` (DATABASE_URL from the environment
when not given).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg

# An arbitrary constant that names "the schema migration lock" for pg_advisory_lock.
_ADVISORY_LOCK_KEY = 0x41474C4B_4D494752  # "AGLKMIGR"
_FILE_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


class MigrationError(RuntimeError):
    """The migrations folder and the database's history disagree."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def default_directory() -> Path:
    configured = os.environ.get("MIGRATIONS_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parent.parent / "migrations"


def load_migrations(directory: Path) -> list[Migration]:
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_snake.sql")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(f"two migration files share version {version:04d}")
        # Normalised line endings: a checkout that converts them must not change checksums.
        sql = path.read_text("utf-8").replace("\r\n", "\n")
        migrations[version] = Migration(version, match.group(2), sql)
    return [migrations[version] for version in sorted(migrations)]


async def migrate(connection: asyncpg.Connection, directory: Path | None = None) -> list[str]:
    """Apply what is pending; returns the names of the files applied (empty when up to date)."""
    migrations = load_migrations(directory or default_directory())
    await connection.execute("SELECT pg_advisory_lock($1)", _ADVISORY_LOCK_KEY)
    try:
        await connection.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    INT PRIMARY KEY,
                name       TEXT NOT NULL,
                checksum   CHAR(64) NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )
            """
        )
        rows = await connection.fetch("SELECT version, name, checksum FROM schema_migrations")
        applied = {row["version"]: row for row in rows}
        on_disk = {migration.version: migration for migration in migrations}
        for version, row in sorted(applied.items()):
            migration = on_disk.get(version)
            if migration is None:
                raise MigrationError(
                    f"migration {version:04d}_{row['name']} is applied but missing on disk"
                )
            if migration.checksum != row["checksum"]:
                raise MigrationError(
                    f"migration {version:04d}_{migration.name}.sql changed after it was applied;"
                    " write a new migration instead"
                )
        done: list[str] = []
        for migration in migrations:
            if migration.version in applied:
                continue
            async with connection.transaction():
                # Fail fast rather than queue every other query behind a blocked migration.
                await connection.execute("SET LOCAL lock_timeout = '10s'")
                await connection.execute(migration.sql)
                await connection.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            done.append(f"{migration.version:04d}_{migration.name}")
        return done
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_LOCK_KEY)


async def migrate_url(database_url: str, directory: Path | None = None) -> list[str]:
    connection = await asyncpg.connect(database_url)
    try:
        return await migrate(connection, directory)
    finally:
        await connection.close()


def main(argv: list[str]) -> int:
    database_url = argv[1] if len(argv) > 1 else os.environ.get("DATABASE_URL")
    if not database_url:
        print("usage: python -m common.migrations DATABASE_URL", file=sys.stderr)
        return 2
    try:
        applied = asyncio.run(migrate_url(database_url))
    except MigrationError as error:
        print(f"migrations: {error}", file=sys.stderr)
        return 1
    print("migrations: " + (", ".join(applied) if applied else "up to date"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
