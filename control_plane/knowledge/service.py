"""Knowledge files: upload (checked, stored, queued for the worker), list, delete.

Only the agent's creator may touch its knowledge base (404 `40401` for an unknown agent, 403
`40302` for another creator's), and that is checked before the upload is read. Uploads are
checked by content (control_plane/knowledge/file_types.py), stored in Postgres with the
chunking settings of the agent's current config, and left `processing` for the worker
(control_plane/knowledge/ingest.py), which makes them `ready` or `failed`. Deleting a ready
file bumps the agent's knowledge version, so the gateway stops retrieving it on its next call.
File contents never appear in logs or errors.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import asyncpg
from starlette.requests import Request

from common.domain import AgentConfig
from common.errors import ApiError, ErrorCode
from common.validation import canonical_uuid
from control_plane.agents.access import canonical_agent_id, owned
from control_plane.auth.principal import Principal
from control_plane.knowledge import repository
from control_plane.knowledge.file_types import invalid_file, kind_of
from control_plane.knowledge.schemas import DeletedFiles, KnowledgeFileList, KnowledgeFileOut
from control_plane.knowledge.uploads import Upload, read_uploads
from control_plane.knowledge.versions import KnowledgeChange, knowledge_change
from control_plane.state import ControlPlaneState


def file_out(row: asyncpg.Record) -> KnowledgeFileOut:
    return KnowledgeFileOut(
        id=row["id"],
        filename=row["filename"],
        file_type=row["file_type"],
        file_size=row["file_size"],
        status=row["status"],
        chunk_count=row["chunk_count"],
        error=row["error"],
        created_at=row["created_at"],
        processed_at=row["processed_at"],
    )


def _locked(change: KnowledgeChange | None, principal: Principal) -> KnowledgeChange:
    owned(None if change is None else change.agent, principal)
    assert change is not None
    return change


async def upload(
    state: ControlPlaneState, principal: Principal, raw_agent_id: str, request: Request
) -> KnowledgeFileList:
    agent_id = canonical_agent_id(raw_agent_id)
    settings = state.settings.knowledge
    async with state.db.acquire() as reader:
        owned(await repository.agent_owner(reader, agent_id), principal)
    return await add_files(state, principal, agent_id, await read_uploads(request, settings))


async def add_files(
    state: ControlPlaneState, principal: Principal, raw_agent_id: str, uploads: list[Upload]
) -> KnowledgeFileList:
    """Store already-read uploads (the dashboard reads its multipart form itself)."""
    agent_id = canonical_agent_id(raw_agent_id)
    settings = state.settings.knowledge
    checked = []
    for item in uploads:
        # Opening a PDF is CPU work: off the event loop.
        kind = await asyncio.to_thread(kind_of, item.filename, item.data)
        checked.append((item, kind, hashlib.sha256(item.data).hexdigest()))
    async with knowledge_change(state.db, state.redis, agent_id) as found:
        change = _locked(found, principal)
        connection, agent = change.connection, change.agent
        present = await repository.file_count(connection, agent_id)
        if present + len(checked) > settings.max_files_per_agent:
            raise invalid_file(
                f"An agent's knowledge base holds at most {settings.max_files_per_agent} files"
                f" ({present} already)."
            )
        config = AgentConfig.from_json(
            state.keyring.decrypt(
                agent["config_encrypted"], agent_id=agent_id, version=agent["version"]
            )
        )
        seen: set[str] = set()
        rows = []
        for item, kind, sha256 in checked:
            existing = await repository.file_with_content_hash(connection, agent_id, sha256)
            if existing is not None or sha256 in seen:
                raise ApiError(
                    ErrorCode.CONFLICT,
                    "This file is already in the agent's knowledge base.",
                    details={"filename": item.filename, "file_id": existing},
                )
            seen.add(sha256)
            row = await repository.insert_file(
                connection, file_id=str(uuid.uuid4()), agent_id=agent_id,
                filename=item.filename, file_type=kind.value, content=item.data, sha256=sha256,
                chunk_size=config.knowledge.chunk_size,
                chunk_overlap=config.knowledge.chunk_overlap,
            )  # fmt: skip
            rows.append(row)
        version = agent["knowledge_version"]
    return KnowledgeFileList([file_out(row) for row in rows], version)


async def list_files(
    state: ControlPlaneState, principal: Principal, raw_agent_id: str
) -> KnowledgeFileList:
    agent_id = canonical_agent_id(raw_agent_id)
    async with state.db.acquire() as connection:
        owned(await repository.agent_owner(connection, agent_id), principal)
        rows = await repository.files_of(connection, agent_id)
        version: int = await connection.fetchval(
            "SELECT knowledge_version FROM agents WHERE id = $1", agent_id
        )
    return KnowledgeFileList([file_out(row) for row in rows], version)


async def delete_files(
    state: ControlPlaneState, principal: Principal, raw_agent_id: str, raw_file_id: str | None
) -> DeletedFiles:
    """Delete one file (or, with None, every file) of the agent's knowledge base."""
    agent_id = canonical_agent_id(raw_agent_id)
    file_ids = None
    if raw_file_id is not None:
        if (file_id := canonical_uuid(raw_file_id)) is None:
            raise ApiError(ErrorCode.RESOURCE_NOT_FOUND, "No such knowledge file.")
        file_ids = [file_id]
    async with knowledge_change(state.db, state.redis, agent_id) as found:
        change = _locked(found, principal)
        deleted = await repository.delete_files(change.connection, agent_id, file_ids)
        if file_ids is not None and not deleted:
            raise ApiError(ErrorCode.RESOURCE_NOT_FOUND, "No such knowledge file.")
        version = change.agent["knowledge_version"]
        if any(row["status"] == "ready" for row in deleted):
            version = await change.bump(state.redis, state.settings.unit_price)
    return DeletedFiles(len(deleted), version)
