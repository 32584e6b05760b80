"""Knowledge uploads over real HTTP: accepted types by content, clear 4xx for everything
else, owner only, listing and deleting."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from tests.control_plane.api_client import assert_error
from tests.control_plane.knowledge.conftest import MAX_FILE_BYTES, MAX_FILES_PER_AGENT, Creator
from tests.control_plane.knowledge.pdfs import encrypted, make_pdf, owner_password_only

PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)
ZIP = b"PK\x03\x04" + bytes(200)


async def test_accepted_files_are_stored_and_queued(
    creator: Creator, db_pool: asyncpg.Pool
) -> None:
    pdf = make_pdf(["The warranty lasts 24 months."])
    response = await creator.upload(
        ("manual.pdf", pdf),
        ("notes.md", b"# Notes\n\nSome *markdown*."),
        ("page.html", b"<html><body><p>Hello</p></body></html>"),
    )

    assert response.status_code == 202, response.text
    items = response.json()["items"]
    assert [(i["filename"], i["file_type"], i["status"]) for i in items] == [
        ("manual.pdf", "pdf", "processing"),
        ("notes.md", "md", "processing"),
        ("page.html", "html", "processing"),
    ]
    assert items[0]["file_size"] == len(pdf)
    stored = await db_pool.fetchval(
        "SELECT content FROM knowledge_file_contents WHERE file_id = $1", items[0]["id"]
    )
    assert stored == pdf
    listed = await creator.client.get(creator.url, headers=creator.headers)
    assert listed.status_code == 200
    assert [i["id"] for i in listed.json()["items"]] == [i["id"] for i in items]
    assert listed.json()["knowledge_version"] == 0  # nothing retrievable yet


async def test_chunk_settings_come_from_the_agents_config(
    creator: Creator, db_pool: asyncpg.Pool
) -> None:
    update = await creator.client.put(
        f"/api/v1/agents/{creator.agent_id}",
        headers=creator.headers,
        json={"config": {"knowledge": {"chunk_size": 400, "chunk_overlap": 50}}},
    )
    assert update.status_code == 200, update.text
    response = await creator.upload(("a.txt", b"some text"))
    file_id = response.json()["items"][0]["id"]
    row = await db_pool.fetchrow(
        "SELECT chunk_size, chunk_overlap FROM knowledge_files WHERE id = $1", file_id
    )
    assert (row["chunk_size"], row["chunk_overlap"]) == (400, 50)


async def test_an_owner_password_only_pdf_is_accepted(creator: Creator) -> None:
    response = await creator.upload(("open.pdf", owner_password_only(make_pdf(["Readable."]))))
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("filename", "content", "status", "code", "says"),
    [
        ("empty.txt", b"", 400, "40002", "empty"),
        ("blank.md", b"  \n\t \n", 400, "40002", "empty"),
        ("photo.png", PNG, 415, "41501", "Only .txt"),
        ("no-extension", b"text", 415, "41501", "Only .txt"),
        ("photo.txt", PNG, 415, "41501", "PNG image"),
        ("report.pdf", ZIP, 415, "41501", "ZIP archive"),
        ("report.pdf", b"just some text, not a PDF", 415, "41501", "named .pdf"),
        ("notes.txt", make_pdf(["x"]), 415, "41501", "PDF"),
        ("latin1.txt", "caf\xe9 cr\xe8me".encode("latin-1"), 415, "41501", "UTF-8"),
        ("page.html", b"plain words, no markup at all", 415, "41501", "does not contain HTML"),
        ("secret.pdf", encrypted(make_pdf(["Hidden."])), 400, "40002", "encrypted"),
        ("broken.pdf", make_pdf(["Half a file."])[:300], 400, "40002", "damaged"),
        ("garbage.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 4, 400, "40002", "damaged"),
    ],
)
async def test_unusable_files_get_a_clear_4xx(
    *, creator: Creator, db_pool: asyncpg.Pool, filename: str, content: bytes, status: int,
    code: str, says: str,
) -> None:  # fmt: skip
    response = await creator.upload((filename, content))

    body = assert_error(response, status, code)
    assert says in str(body["error"]), body
    count = await db_pool.fetchval(
        "SELECT count(*) FROM knowledge_files WHERE agent_id = $1", creator.agent_id
    )
    assert count == 0


async def test_one_bad_file_stores_none_of_the_upload(
    creator: Creator, db_pool: asyncpg.Pool
) -> None:
    response = await creator.upload(("good.txt", b"fine"), ("bad.txt", PNG))
    assert_error(response, 415, "41501")
    assert await db_pool.fetchval(
        "SELECT count(*) FROM knowledge_files WHERE agent_id = $1", creator.agent_id
    ) == 0  # fmt: skip


async def test_oversized_files_and_bodies_get_413(creator: Creator) -> None:
    response = await creator.upload(("big.txt", b"a" * (MAX_FILE_BYTES + 1)))
    body = assert_error(response, 413, "41301")
    assert body["error"]["details"] == {"limit_bytes": MAX_FILE_BYTES, "filename": "big.txt"}
    # Far over what a whole upload may be: the stream is cut off, not read to its end.
    huge = await creator.upload(("huge.txt", b"a" * (MAX_FILE_BYTES * 3 + 2 * 1024 * 1024)))
    assert_error(huge, 413, "41301")


async def test_count_limits(creator: Creator) -> None:
    too_many = await creator.upload(*[(f"{n}.txt", f"file {n}".encode()) for n in range(4)])
    assert_error(too_many, 400, "40001")  # more files in one request than allowed
    for n in range(MAX_FILES_PER_AGENT):
        assert (await creator.upload((f"{n}.txt", f"file {n}".encode()))).status_code == 202
    full = await creator.upload(("one-more.txt", b"one more"))
    body = assert_error(full, 400, "40002")
    assert f"at most {MAX_FILES_PER_AGENT} files" in str(body)


async def test_the_same_content_twice_is_a_conflict(creator: Creator) -> None:
    first = await creator.upload(("a.txt", b"same bytes"))
    again = await creator.upload(("b.txt", b"same bytes"))
    body = assert_error(again, 409, "40901")
    assert body["error"]["details"]["file_id"] == first.json()["items"][0]["id"]


async def test_malformed_and_non_multipart_requests(creator: Creator) -> None:
    not_multipart = await creator.client.post(
        creator.url, headers=creator.headers, json={"file": "x"}
    )
    assert_error(not_multipart, 415, "41501")
    no_file = await creator.client.post(creator.url, headers=creator.headers, data={"a": "b"},
                                        files=[("other", ("x.txt", b""))])  # fmt: skip
    assert_error(no_file, 400, "40002")
    broken = await creator.client.post(
        creator.url,
        headers={**creator.headers, "content-type": "multipart/form-data"},  # no boundary
        content=b"whatever",
    )
    assert_error(broken, 400, "40001")


async def test_only_the_owner_may_upload_list_or_delete(
    creator: Creator, client: httpx.AsyncClient
) -> None:
    other = Creator(client, {}, creator.agent)
    from tests.control_plane.agents.helpers import creator_headers

    other.headers = await creator_headers(client)
    assert_error(await other.upload(("a.txt", b"x")), 403, "40302")
    assert_error(await client.get(creator.url, headers=other.headers), 403, "40302")
    assert_error(await client.delete(creator.url, headers=other.headers), 403, "40302")
    assert_error(await client.post(creator.url, files=[("file", ("a.txt", b"x"))]), 401, "40101")
    unknown = "/api/v1/agents/00000000-0000-4000-8000-000000000000/knowledge"
    assert_error(await client.get(unknown, headers=creator.headers), 404, "40401")


async def test_delete_one_and_all(creator: Creator, db_pool: asyncpg.Pool) -> None:
    uploaded = (await creator.upload(("a.txt", b"a"), ("b.txt", b"b"))).json()["items"]
    one = await creator.client.delete(f"{creator.url}/{uploaded[0]['id']}", headers=creator.headers)
    assert one.status_code == 200, one.text
    assert one.json()["deleted"] == 1
    again = await creator.client.delete(
        f"{creator.url}/{uploaded[0]['id']}", headers=creator.headers
    )
    assert_error(again, 404, "40404")
    assert_error(
        await creator.client.delete(f"{creator.url}/not-a-uuid", headers=creator.headers),
        404, "40404",
    )  # fmt: skip
    everything = await creator.client.delete(creator.url, headers=creator.headers)
    assert everything.json()["deleted"] == 1
    assert await db_pool.fetchval(
        "SELECT count(*) FROM knowledge_file_contents c JOIN knowledge_files f ON f.id = c.file_id"
        " WHERE f.agent_id = $1", creator.agent_id,
    ) == 0  # fmt: skip
