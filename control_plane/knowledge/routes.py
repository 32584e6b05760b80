"""Knowledge-base routes: path → handler. The agent's creator only."""

from __future__ import annotations

from control_plane.api import ApiRoute, Context
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


PATH = "/api/v1/agents/{agent_id}/knowledge"
CREATORS = frozenset({UserType.CREATOR})
TAGS = ("knowledge",)
ROUTES = [
    ApiRoute("POST", PATH, upload_knowledge_files,
             "Upload files (multipart, fields named `file`: .txt, .md, .pdf, .html); they are"
             " processed in the background (status `processing` → `ready` | `failed`)",
             response=KnowledgeFileList, status=202, user_types=CREATORS, tags=TAGS,
             extra={"multipart": True}),
    ApiRoute("GET", PATH, list_knowledge_files, "The agent's knowledge files, oldest first",
             response=KnowledgeFileList, user_types=CREATORS, tags=TAGS),
    ApiRoute("DELETE", f"{PATH}/{{file_id}}", delete_knowledge_file,
             "Delete one knowledge file (and its chunks)",
             response=DeletedFiles, user_types=CREATORS, tags=TAGS),
    ApiRoute("DELETE", PATH, delete_all_knowledge_files,
             "Delete every knowledge file of the agent",
             response=DeletedFiles, user_types=CREATORS, tags=TAGS),
]  # fmt: skip
