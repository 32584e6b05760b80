"""Reading a multipart upload: bounded in size and count, files only, names made safe.

Starlette's multipart parser (python-multipart) spools each file to a temporary file past
1 MiB, so memory stays small; the stream it reads is cut off with 413 `41301` as soon as it
exceeds what the settings allow, and a declared Content-Length over that is refused before
reading a byte.
"""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from common.asgi import ClientDisconnected
from common.errors import ApiError, ErrorCode
from common.validation import check_text
from control_plane.knowledge.file_types import invalid_file
from control_plane.knowledge.settings import KnowledgeBaseSettings

_MULTIPART_OVERHEAD = 1024 * 1024  # part headers and boundaries, generously
_MAX_FILENAME = 255


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    data: bytes


def _too_large(limit: int, filename: str | None = None) -> ApiError:
    details: dict[str, object] = {"limit_bytes": limit}
    if filename is not None:
        details["filename"] = filename
    return ApiError(ErrorCode.PAYLOAD_TOO_LARGE, "The file is too large.", details=details)


def clean_filename(raw: str | None) -> str:
    """The name without any folder part or control characters, at most 255 characters."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if unicodedata.category(char)[0] != "C").strip()
    if not name or name in (".", ".."):
        raise invalid_file("Every file needs a name (with its extension).")
    if len(name) > _MAX_FILENAME:
        stem, dot, extension = name.rpartition(".")
        name = stem[: _MAX_FILENAME - len(extension) - 1] + dot + extension if dot else name[:255]
    return name


async def read_uploads(request: Request, settings: KnowledgeBaseSettings) -> list[Upload]:
    _, uploads = await read_form_with_uploads(request, settings)
    return uploads


async def read_form_with_uploads(
    request: Request, settings: KnowledgeBaseSettings
) -> tuple[list[tuple[str, str]], list[Upload]]:
    """The multipart form's plain fields (in order) and its files, within the limits."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            "Send the files as multipart/form-data, each in a field named `file`.",
        )
    limit = settings.max_file_bytes * settings.max_files_per_upload + _MULTIPART_OVERHEAD
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(settings.max_file_bytes)
    parser = MultiPartParser(
        request.headers,
        _bounded(request, limit, settings.max_file_bytes),
        max_files=settings.max_files_per_upload,
        max_fields=20,
        max_part_size=64 * 1024,
    )
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"Malformed upload: {error.message}") from None
    except ClientDisconnect:
        raise ClientDisconnected from None
    try:
        fields: list[tuple[str, str]] = []
        uploads = []
        for name, value in form.multi_items():
            # The one text check of every input (common/validation.py), multipart too.
            check_text("form field name", name, max_length=200)
            if not isinstance(value, UploadFile):
                fields.append((name, check_text(name, value)))
                continue
            filename = check_text("filename", clean_filename(value.filename))
            data = await value.read(settings.max_file_bytes + 1)
            if len(data) > settings.max_file_bytes:
                raise _too_large(settings.max_file_bytes, filename)
            uploads.append(Upload(filename, data))
    finally:
        await form.close()
    if not uploads:
        raise invalid_file("No file in the request: send each in a multipart field named `file`.")
    return fields, uploads


async def _bounded(request: Request, limit: int, file_limit: int) -> AsyncGenerator[bytes, None]:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(file_limit)
        yield chunk
