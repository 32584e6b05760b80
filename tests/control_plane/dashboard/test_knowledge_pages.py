"""The knowledge files page over HTTP: upload through the multipart form, each file's
processing status (the worker's real ingestion), the status feed the page's script follows,
delete one and all; refusals on the page; CSRF and ownership on every action."""

from __future__ import annotations

import asyncpg

from tests.control_plane.dashboard.conftest import Browserless, Worker
from tests.control_plane.dashboard.support import create_agent, find

FAQ = b"# Shipping\n\nParcels leave the warehouse within two working days of the order."
NOTES = b"Returns are accepted for thirty days. Refunds reach the card within a week."


async def _knowledge_page(creator: Browserless, name: str, prompt: str) -> tuple[str, str]:
    """A new creator's new agent: (its id, the path of its knowledge page)."""
    await creator.register("creator")
    agent_id = await create_agent(creator, name=name, prompt=prompt)
    return agent_id, f"/creator/agents/{agent_id}/knowledge"


async def test_files_are_uploaded_processed_and_deleted_through_the_page(
    browserless: Browserless, knowledge_worker: Worker, db_pool: asyncpg.Pool
) -> None:
    agent_id, page = await _knowledge_page(browserless, "Knows things", "k")
    empty = await browserless.get(page)
    assert empty.status_code == 200
    assert "No files yet." in empty.text
    assert "Retrieval is off for this agent" in empty.text  # the form's default

    uploaded = await browserless.post_files(page, [("faq.md", FAQ), ("notes.txt", NOTES)])
    assert uploaded.status_code == 303, uploaded.text
    assert uploaded.headers["location"] == page
    listing = await browserless.get(page)
    assert "Uploaded faq.md, notes.txt: processing has started." in listing.text
    assert listing.text.count('<span class="badge warn">processing</span>') == 2
    assert "data-processing" in listing.text
    feed = await browserless.get(f"{page}/status")
    assert {item["status"] for item in feed.json()["files"]} == {"processing"}

    await knowledge_worker.process_uploads()

    feed = await browserless.get(f"{page}/status")
    files = feed.json()["files"]
    assert [item["status"] for item in files] == ["ready", "ready"]
    assert all(item["chunk_count"] >= 1 for item in files)
    assert feed.json()["knowledge_version"] >= 1
    ready = await browserless.get(page)
    assert ready.text.count('<span class="badge ok">ready</span>') == 2
    assert "data-processing" not in ready.text

    # The same content again is refused on the page, saying why; nothing is stored twice.
    again = await browserless.post_files(page, [("copy.md", FAQ)])
    assert again.status_code == 409
    assert "already in the agent&#39;s knowledge base" in again.text
    # A file we cannot read as text is refused on the page too.
    binary = await browserless.post_files(page, [("tool.exe", b"MZ\x90\x00\x03")])
    assert 400 <= binary.status_code < 500
    assert 'id="file-error"' in binary.text

    file_id = find(r'action="/creator/agents/[0-9a-f-]{36}/knowledge/([0-9a-f-]{36})/delete"',
                   ready.text)  # fmt: skip
    deleted = await browserless.post(f"{page}/{file_id}/delete")
    assert deleted.status_code == 303
    assert len((await browserless.get(f"{page}/status")).json()["files"]) == 1
    cleared = await browserless.post(f"{page}/delete-all")
    assert cleared.status_code == 303
    assert "Deleted 1 files." in (await browserless.get(page)).text
    left = await db_pool.fetchval(
        "SELECT count(*) FROM knowledge_files WHERE agent_id = $1", agent_id
    )
    assert left == 0


async def test_another_creator_can_neither_see_nor_change_the_files(
    browserless: Browserless, another: Browserless, db_pool: asyncpg.Pool
) -> None:
    agent_id, page = await _knowledge_page(browserless, "Private knowledge", "p")
    await browserless.get(page)
    assert (
        await browserless.post_files(page, [("secret.txt", b"OWNER-ONLY-TEXT")])
    ).status_code == 303
    file_id = find(r'/knowledge/([0-9a-f-]{36})/delete"', (await browserless.get(page)).text)

    await another.register("creator")
    view = await another.get(page)
    assert view.status_code == 403
    assert "secret.txt" not in view.text
    feed = await another.get(f"{page}/status")
    assert feed.status_code == 403
    assert feed.json()["error"]["code"] == "40302"
    assert (await another.post_files(page, [("mine.txt", b"intruder")])).status_code == 403
    assert (await another.post(f"{page}/{file_id}/delete")).status_code == 403
    assert (await another.post(f"{page}/delete-all")).status_code == 403
    names = await db_pool.fetch(
        "SELECT filename FROM knowledge_files WHERE agent_id = $1", agent_id
    )
    assert [row["filename"] for row in names] == ["secret.txt"]
    await browserless.post(f"{page}/delete-all")  # nothing left queued for other tests


async def test_an_upload_without_the_pages_token_is_refused(
    browserless: Browserless, db_pool: asyncpg.Pool
) -> None:
    agent_id, page = await _knowledge_page(browserless, "Token check", "t")
    browserless.csrf = "0" * 64
    refused = await browserless.post_files(page, [("forged.txt", b"forged")])
    assert refused.status_code == 403
    assert "Request refused" in refused.text
    stored = await db_pool.fetchval(
        "SELECT count(*) FROM knowledge_files WHERE agent_id = $1", agent_id
    )
    assert stored == 0
