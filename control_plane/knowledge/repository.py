"""All SQL of the knowledge domain except retrieval (common/knowledge/retrieval.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from common.db import DbConnection, fetch_all, fetch_one, fetch_optional
from common.knowledge.records import KNOWLEDGE_RECORD

_FILE_COLUMNS = """id::text AS id, agent_id::text AS agent_id, filename, file_type, file_size,
                   status, chunk_count, error, created_at, processed_at, chunk_size,
                   chunk_overlap, attempts"""


async def agent_for_update(connection: DbConnection, agent_id: str) -> asyncpg.Record | None:
    """The agent's row, locked: changes to one agent's knowledge base run one at a time."""
    return await fetch_optional(
        connection,
        """SELECT id, creator_id, status, version, price_per_call, knowledge_version,
                  config_encrypted
           FROM agents WHERE id = $1 FOR UPDATE""",
        agent_id,
    )


async def agent_owner(connection: DbConnection, agent_id: str) -> asyncpg.Record | None:
    return await fetch_optional(
        connection,
        "SELECT creator_id, version, config_encrypted FROM agents WHERE id = $1",
        agent_id,
    )


async def file_count(connection: DbConnection, agent_id: str) -> int:
    count: int = await connection.fetchval(
        "SELECT count(*) FROM knowledge_files WHERE agent_id = $1", agent_id
    )
    return count


async def file_with_content_hash(
    connection: DbConnection, agent_id: str, sha256: str
) -> str | None:
    found: str | None = await connection.fetchval(
        "SELECT id::text FROM knowledge_files WHERE agent_id = $1 AND content_sha256 = $2",
        agent_id,
        sha256,
    )
    return found


async def insert_file(
    connection: DbConnection,
    *,
    file_id: str,
    agent_id: str,
    filename: str,
    file_type: str,
    content: bytes,
    sha256: str,
    chunk_size: int,
    chunk_overlap: int,
) -> asyncpg.Record:
    row: asyncpg.Record | None = await connection.fetchrow(
        f"""INSERT INTO knowledge_files (id, agent_id, filename, file_type, file_size,
                                         storage_key, content_sha256, chunk_size, chunk_overlap)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            RETURNING {_FILE_COLUMNS}""",  # noqa: S608 - fixed column list
        file_id,
        agent_id,
        filename,
        file_type,
        len(content),
        f"postgres:knowledge_file_contents/{file_id}",
        sha256,
        chunk_size,
        chunk_overlap,
    )
    assert row is not None  # INSERT ... RETURNING always returns the row
    await connection.execute(
        "INSERT INTO knowledge_file_contents (file_id, content) VALUES ($1, $2)", file_id, content
    )
    return row


async def files_of(connection: DbConnection, agent_id: str) -> list[asyncpg.Record]:
    return await fetch_all(
        connection,
        f"""SELECT {_FILE_COLUMNS} FROM knowledge_files WHERE agent_id = $1
            ORDER BY created_at, filename, id""",  # noqa: S608 - fixed column list
        agent_id,
    )


async def delete_files(
    connection: DbConnection, agent_id: str, file_ids: Sequence[str] | None
) -> list[asyncpg.Record]:
    """Delete some (or, with None, all) of the agent's files with their chunks and bytes;
    returns the deleted rows' ids and statuses."""
    return await fetch_all(
        connection,
        """DELETE FROM knowledge_files
           WHERE agent_id = $1 AND ($2::uuid[] IS NULL OR id = ANY ($2::uuid[]))
           RETURNING id::text AS id, status""",
        agent_id,
        None if file_ids is None else list(file_ids),
    )


async def bump_knowledge_version(connection: DbConnection, agent_id: str) -> asyncpg.Record:
    """One more knowledge version; returns what the gateway's agent record is made of."""
    return await fetch_one(
        connection,
        f"""UPDATE agents SET knowledge_version = knowledge_version + 1 WHERE id = $1
            RETURNING status, version, price_per_call, knowledge_version,
                      {KNOWLEDGE_RECORD}""",  # noqa: S608 - a fixed expression
        agent_id,
    )


# -- the worker's queue ---------------------------------------------------------------------


async def queued_files(connection: DbConnection, limit: int) -> list[asyncpg.Record]:
    return await fetch_all(
        connection,
        """SELECT id::text AS id FROM knowledge_files WHERE status = 'processing'
           ORDER BY created_at, id LIMIT $1""",
        limit,
    )


async def claim_file(connection: DbConnection, file_id: str) -> asyncpg.Record | None:
    """Count an attempt on a file still waiting; None when it is no longer waiting."""
    return await fetch_optional(
        connection,
        f"""UPDATE knowledge_files SET attempts = attempts + 1
            WHERE id = $1 AND status = 'processing'
            RETURNING {_FILE_COLUMNS}""",  # noqa: S608 - fixed column list
        file_id,
    )


async def file_content(connection: DbConnection, file_id: str) -> bytes | None:
    content: bytes | None = await connection.fetchval(
        "SELECT content FROM knowledge_file_contents WHERE file_id = $1", file_id
    )
    return content


async def staged_chunk_indexes(connection: DbConnection, file_id: str, model: str) -> set[int]:
    """Chunks already embedded by an earlier attempt (with this model; others are dropped)."""
    await connection.execute(
        "DELETE FROM knowledge_chunk_staging WHERE file_id = $1 AND embedding_model <> $2",
        file_id,
        model,
    )
    rows = await connection.fetch(
        "SELECT chunk_index FROM knowledge_chunk_staging WHERE file_id = $1", file_id
    )
    return {row["chunk_index"] for row in rows}


async def stage_chunks(connection: DbConnection, rows: list[tuple[Any, ...]]) -> None:
    """(file_id, chunk_index, content, embedding literal, model, dimension) rows."""
    await connection.executemany(
        """INSERT INTO knowledge_chunk_staging
               (file_id, chunk_index, content, embedding, embedding_model, embedding_dimension)
           VALUES ($1, $2, $3, $4::vector, $5, $6)
           ON CONFLICT (file_id, chunk_index) DO NOTHING""",
        rows,
    )


async def file_for_update(connection: DbConnection, file_id: str) -> asyncpg.Record | None:
    return await fetch_optional(
        connection, "SELECT status FROM knowledge_files WHERE id = $1 FOR UPDATE", file_id
    )


async def publish_staged(connection: DbConnection, agent_id: str, file_id: str) -> int:
    """Move the file's staged chunks into knowledge_chunks and mark it ready; returns the
    chunk count. In the caller's transaction: retrieval sees all of the file or none."""
    await connection.execute(
        """WITH staged AS (DELETE FROM knowledge_chunk_staging WHERE file_id = $2 RETURNING *)
           INSERT INTO knowledge_chunks (agent_id, file_id, chunk_index, content, embedding,
                                         embedding_model, embedding_dimension)
           SELECT $1, file_id, chunk_index, content, embedding, embedding_model,
                  embedding_dimension
           FROM staged
           ON CONFLICT (file_id, chunk_index) DO NOTHING""",
        agent_id,
        file_id,
    )
    count: int = await connection.fetchval(
        "SELECT count(*) FROM knowledge_chunks WHERE file_id = $1", file_id
    )
    await connection.execute(
        """UPDATE knowledge_files SET status = 'ready', chunk_count = $2, error = NULL,
                                      processed_at = now()
           WHERE id = $1""",
        file_id,
        count,
    )
    return count


async def fail_file(connection: DbConnection, file_id: str, reason: str) -> None:
    await connection.execute(
        """UPDATE knowledge_files SET status = 'failed', error = $2, processed_at = now()
           WHERE id = $1 AND status = 'processing'""",
        file_id,
        reason,
    )
    await connection.execute("DELETE FROM knowledge_chunk_staging WHERE file_id = $1", file_id)
