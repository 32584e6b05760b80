"""Knowledge-base routes: path → handler. The agent's creator only."""

from __future__ import annotations

from control_plane.api import Context, RouteGroup
from control_plane.auth.principal import UserType
from control_plane.knowledge import service
from control_plane.knowledge.schemas import DeletedFiles, KnowledgeFileList


async def upload_knowledge_files(context: Context) -> KnowledgeFileList:
    return await service.upload(context.state, context.user, context.path["agent_id"],
                                context.request)  # fmt: skip


async def list_knowledge_files(context: Context) -> KnowledgeFileList:
    return await service.list_files(context.state, context.user, context.path["agent_id"])


async def delete_knowledge_file(context: Context) -> DeletedFiles:
    path = context.path
    return await service.delete_files(context.state, context.user, path["agent_id"],
                                      path["file_id"])  # fmt: skip


async def delete_all_knowledge_files(context: Context) -> DeletedFiles:
    return await service.delete_files(context.state, context.user, context.path["agent_id"], None)


_CREATOR = RouteGroup("/api/v1/agents/{agent_id}/knowledge", frozenset({UserType.CREATOR}),
                      "knowledge")  # fmt: skip
ROUTES = [
    _CREATOR.route("POST", "", upload_knowledge_files,
                   "Upload files (multipart, fields named `file`: .txt, .md, .pdf, .html); they"
                   " are processed in the background (status `processing` → `ready` | `failed`)",
                   response=KnowledgeFileList, status=202, extra={"multipart": True}),
    _CREATOR.route("GET", "", list_knowledge_files, "The agent's knowledge files, oldest first",
                   response=KnowledgeFileList),
    _CREATOR.route("DELETE", "/{file_id}", delete_knowledge_file,
                   "Delete one knowledge file (and its chunks)", response=DeletedFiles),
    _CREATOR.route("DELETE", "", delete_all_knowledge_files,
                   "Delete every knowledge file of the agent", response=DeletedFiles),
]  # fmt: skip
