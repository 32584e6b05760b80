"""Every text a multipart upload carries passes the same text check as JSON bodies (issue 9:
no 500 from any input): file names, field names and values, with NUL bytes, invalid UTF-8
and lone surrogates in each."""

from __future__ import annotations

import pytest

from tests.control_plane.knowledge.conftest import Creator


def multipart(parts: list[tuple[bytes, bytes]]) -> tuple[bytes, dict[str, str]]:
    """A hand-written body, so its headers can carry bytes no client library would send."""
    boundary = b"agentlinkboundary"
    body = b""
    for disposition, content in parts:
        body += b"--" + boundary + b"\r\nContent-Disposition: form-data; " + disposition
        body += b"\r\n\r\n" + content + b"\r\n"
    body += b"--" + boundary + b"--\r\n"
    return body, {"Content-Type": "multipart/form-data; boundary=agentlinkboundary"}


@pytest.mark.parametrize(
    "parts",
    [
        [(b'name="file"; filename="a\x00b.txt"', b"hello")],
        [(b'name="file"; filename="\xff\xfe.txt"', b"hello")],
        [(b'name="file"; filename="\xed\xa0\x80.txt"', b"hello")],  # an encoded surrogate
        [(b'name="file"; filename="a.txt"', b"hello"), (b'name="note"', b"a\x00b")],
        [(b'name="file"; filename="a.txt"', b"hello"), (b'name="n\x00te"', b"x")],
        [(b'name="file"; filename="a.txt"', b"hello"), (b'name="note"', b"\xed\xa0\x80")],
        [(b'name="file"; filename="a.txt"', b"hel\x00lo")],
        [(b'name="file"; filename="a.txt"', b"\xff\xfe\x00\xd8\x41\x00")],  # UTF-16, lone surrogate
        [(b"name=\"file\"; filename*=UTF-8''%ED%A0%80.txt", b"hello")],
    ],
    ids=[
        "NUL in name",
        "latin-1 name",
        "surrogate name",
        "NUL in field",
        "NUL in field name",
        "surrogate field",
        "NUL in text",
        "UTF-16 surrogate",
        "RFC 2231 surrogate",
    ],
)
async def test_odd_text_in_an_upload_is_never_a_500(
    creator: Creator, parts: list[tuple[bytes, bytes]]
) -> None:
    body, headers = multipart(parts)
    response = await creator.client.post(
        creator.url, headers=creator.headers | headers, content=body
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["error"]["code"].startswith("4")
    else:  # stored: nothing Postgres could not hold, no control character in the name
        for stored in response.json()["items"]:
            assert not any(ord(char) < 32 for char in stored["filename"])


async def test_a_nul_in_a_form_field_is_a_400(creator: Creator) -> None:
    body, headers = multipart(
        [(b'name="file"; filename="a.txt"', b"hello"), (b'name="note"', b"a\x00b")]
    )
    response = await creator.client.post(
        creator.url, headers=creator.headers | headers, content=body
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "40002"
