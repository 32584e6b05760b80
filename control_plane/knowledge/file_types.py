"""What an uploaded file is, from its content: the name only says what it claims to be.

A knowledge file is `.txt`, `.md`, `.pdf` or `.html`. The content must agree with the name:
a PDF starts with `%PDF-` and opens (not encrypted with a password, not corrupt); the others
are text (UTF-8, or UTF-16 with a byte-order mark) and an `.html` file looks like HTML. A
rename (`photo.png` → `notes.txt`, a `.docx` called `.pdf`) is refused with 415, never
stored. Each refusal says what is wrong, without echoing the content.
"""

from __future__ import annotations

import io
import logging
import re
from enum import StrEnum

from pypdf import PasswordType, PdfReader
from pypdf.errors import PyPdfError

from common.errors import ApiError, ErrorCode


class FileKind(StrEnum):
    TEXT = "txt"
    MARKDOWN = "md"
    PDF = "pdf"
    HTML = "html"


EXTENSIONS = {
    ".txt": FileKind.TEXT,
    ".text": FileKind.TEXT,
    ".md": FileKind.MARKDOWN,
    ".markdown": FileKind.MARKDOWN,
    ".pdf": FileKind.PDF,
    ".html": FileKind.HTML,
    ".htm": FileKind.HTML,
}
SUPPORTED = ".txt, .md, .pdf, .html"

# Signatures of common binary formats, to name what was uploaded instead of the file.
_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive (or a .docx/.xlsx/.pptx document)"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x7fELF", "an executable"),
    (b"MZ", "an executable"),
    (b"\xd0\xcf\x11\xe0", "an old Office document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"%PDF-", "a PDF"),
)
_HTML = re.compile(rb"<(!doctype\s+html|html|head|body|p|div|h[1-6]|title|table|ul|article)[\s>/]",
                   re.IGNORECASE)  # fmt: skip

# pypdf reports what it repairs on its logger; a repaired file is fine, and its chatter is noise.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def unsupported(message: str) -> ApiError:
    return ApiError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, message, details={"supported": SUPPORTED})


def invalid_file(message: str) -> ApiError:
    return ApiError(ErrorCode.VALIDATION_FAILED, details=[{"field": "file", "message": message}])


def kind_of(filename: str, data: bytes) -> FileKind:
    """The file's kind, or an ApiError (415 for a type we do not take, 400 for a file of the
    right type that cannot be used)."""
    dot = filename.rfind(".")
    kind = EXTENSIONS.get(filename[dot:].lower()) if dot > 0 else None
    if kind is None:
        raise unsupported(f"Only {SUPPORTED} files are accepted.")
    if not data.strip():
        raise invalid_file("The file is empty.")
    found = _binary_format(data)
    if kind is FileKind.PDF:
        if found != "a PDF":
            raise unsupported(f"The file is named .pdf but is {found or 'text'}.")
        check_pdf(data)
        return kind
    if found is not None:
        raise unsupported(f"The file is named {filename[dot:]} but is {found}.")
    text = decode_text(data)
    if not text.strip():
        raise invalid_file("The file is empty.")
    if kind is FileKind.HTML and not _HTML.search(data[:65536]):
        raise unsupported("The file is named .html but does not contain HTML.")
    return kind


def _binary_format(data: bytes) -> str | None:
    head = data[:1024].lstrip()
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "binary data"
    return None


def decode_text(data: bytes) -> str:
    """UTF-8 (a BOM is dropped), or UTF-16 announced by its BOM; anything else is refused."""
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            return data.decode("utf-16")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise unsupported("Text files must be UTF-8 (or UTF-16 with a byte-order mark).") from None


def open_pdf(data: bytes) -> PdfReader:
    """A readable PDF, decrypted when it only has an owner password (readable by anyone)."""
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise invalid_file("The PDF is encrypted with a password; upload it unprotected.")
        if len(reader.pages) == 0:
            raise invalid_file("The PDF has no pages.")
    except ApiError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError):
        # pypdf raises all of these on damaged files; none of it is ours to report.
        raise invalid_file("The PDF is damaged and cannot be read.") from None
    return reader


def check_pdf(data: bytes) -> None:
    open_pdf(data)
