"""Knowledge files of an agent: upload (a multipart form), the processing status of each file
(`processing` → `ready` | `failed`, followed live by a small script), delete one or all.

Everything goes through the knowledge service, which checks that the agent is the caller's:
another creator's agent is a 403 here exactly as over the API. The worker does the processing.
"""

from __future__ import annotations

import orjson
from starlette.responses import Response

from common.domain import UserType
from common.errors import ApiError, ErrorCode
from control_plane.agents import service as agents
from control_plane.dashboard.forms import Errors, form_errors
from control_plane.dashboard.pages import Page, PageContext
from control_plane.knowledge import service as knowledge
from control_plane.knowledge.file_types import FileKind

CREATORS = frozenset({UserType.CREATOR})
# What a failed upload is answered with on the page itself (anything else is an error page).
_FORM_ERRORS = frozenset({ErrorCode.VALIDATION_FAILED, ErrorCode.CONFLICT,
                          ErrorCode.INVALID_REQUEST, ErrorCode.PAYLOAD_TOO_LARGE,
                          ErrorCode.UNSUPPORTED_MEDIA_TYPE})  # fmt: skip


def _base(ctx: PageContext) -> str:
    return f"/creator/agents/{ctx.path['agent_id']}/knowledge"


async def _page(ctx: PageContext, *, errors: Errors | None = None, status: int = 200) -> Response:
    agent = await agents.get_agent(ctx.state, ctx.user, ctx.path["agent_id"])
    listing = await knowledge.list_files(ctx.state, ctx.user, agent.id)
    limits = ctx.state.settings.knowledge
    return ctx.render(
        "creator/knowledge.html", agent=agent, files=listing.items,
        knowledge_version=listing.knowledge_version, errors=errors or {}, status=status,
        processing=any(item.status == "processing" for item in listing.items),
        accept=",".join(f".{kind.value}" for kind in FileKind),
        max_file_mib=limits.max_file_bytes / 1_048_576,
        max_files=limits.max_files_per_agent, max_per_upload=limits.max_files_per_upload,
    )  # fmt: skip


async def files_page(ctx: PageContext) -> Response:
    return await _page(ctx)


async def upload(ctx: PageContext) -> Response:
    if not ctx.uploads:
        return await _page(ctx, errors={"file": "Choose at least one file."}, status=400)
    try:
        added = await knowledge.add_files(ctx.state, ctx.user, ctx.path["agent_id"], ctx.uploads)
    except ApiError as error:
        found = form_errors(error, *_FORM_ERRORS)
        message = found.get("file") or found.get("form") or error.message
        return await _page(ctx, errors={"file": message}, status=error.status)
    names = ", ".join(item.filename for item in added.items)
    return ctx.redirect(_base(ctx), notice=f"Uploaded {names}: processing has started.")


async def status(ctx: PageContext) -> Response:
    """The files' status as JSON, for the page's script to follow processing."""
    listing = await knowledge.list_files(ctx.state, ctx.user, ctx.path["agent_id"])
    body = {"knowledge_version": listing.knowledge_version,
            "files": [{"id": item.id, "status": item.status, "chunk_count": item.chunk_count,
                       "error": item.error} for item in listing.items]}  # fmt: skip
    return Response(orjson.dumps(body), media_type="application/json")


async def delete_one(ctx: PageContext) -> Response:
    await knowledge.delete_files(ctx.state, ctx.user, ctx.path["agent_id"], ctx.path["file_id"])
    return ctx.redirect(_base(ctx), notice="File deleted: retrieval no longer uses it.")


async def delete_all(ctx: PageContext) -> Response:
    deleted = await knowledge.delete_files(ctx.state, ctx.user, ctx.path["agent_id"], None)
    return ctx.redirect(_base(ctx), notice=f"Deleted {deleted.deleted} files.")


BASE = "/creator/agents/{agent_id}/knowledge"
PAGES = [
    Page("GET", BASE, files_page, users=CREATORS),
    Page("POST", BASE, upload, users=CREATORS, multipart=True),
    Page("GET", f"{BASE}/status", status, users=CREATORS, api=True),
    Page("POST", f"{BASE}/{{file_id}}/delete", delete_one, users=CREATORS),
    Page("POST", f"{BASE}/delete-all", delete_all, users=CREATORS),
]
