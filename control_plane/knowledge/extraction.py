"""Text out of an uploaded file: pypdf for PDF, html2text for HTML, UTF-8 for the rest.

Runs in the worker, off its event loop (asyncio.to_thread): parsing a large PDF is CPU work.
"""

from __future__ import annotations

import html2text
from pypdf.errors import PyPdfError

from common.errors import ApiError
from common.knowledge.chunking import normalise
from control_plane.knowledge.file_types import FileKind, decode_text, open_pdf


class ExtractionError(Exception):
    """The file cannot be turned into text; the message is shown to its owner."""


def extract_text(kind: FileKind, data: bytes) -> str:
    try:
        if kind is FileKind.PDF:
            text = _pdf_text(data)
        elif kind is FileKind.HTML:
            text = html_text(decode_text(data))
        else:
            text = decode_text(data)
    except ApiError as error:  # the upload checks, failing now (e.g. a library changed)
        raise ExtractionError(error.message) from None
    text = normalise(text)
    if not text:
        what = "a scanned PDF without a text layer?" if kind is FileKind.PDF else "empty"
        raise ExtractionError(f"No text could be extracted ({what}).")
    return text


def _pdf_text(data: bytes) -> str:
    reader = open_pdf(data)
    pages = []
    for page in reader.pages:
        try:
            pages.append(page.extract_text() or "")
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError):
            raise ExtractionError("A page of the PDF is damaged and cannot be read.") from None
    return "\n\n".join(pages)


def html_text(markup: str) -> str:
    """The readable text of a page: headings, paragraphs and lists kept as lines, without
    links' targets, images, scripts or styles."""
    converter = html2text.HTML2Text()
    converter.ignore_links = True
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.ignore_tables = False
    converter.body_width = 0  # no hard wrapping: the chunker decides where lines break
    converter.unicode_snob = True
    return converter.handle(markup)
