"""Recursive text splitting: chunks of at most `chunk_size` characters that break at the
coarsest boundary that fits (paragraph, then line, then sentence, then word, then anywhere),
with about `chunk_overlap` characters repeated between neighbours.

The semantics of the seed's RecursiveCharacterTextSplitter (defaults 1,000 / 200), computed on
spans of one normalised text, so every chunk is a verbatim slice of it: what the model is
shown is what the creator wrote, and the invariants are easy to state and test
(tests/common/knowledge/test_chunking.py). The output depends only on the text and the two
numbers, which is what lets an interrupted ingestion resume where it stopped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

# Coarsest first. Each pattern matches the separator that ends a piece; the piece keeps it.
_BOUNDARIES = (
    re.compile(r"\n\n+"),  # paragraphs
    re.compile(r"\n"),  # lines
    re.compile(r"(?<=[.!?;:])[\"')\]]*\s+"),  # sentences
    re.compile(r"\s+"),  # words
)
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*")
_LINE_EDGES = re.compile(r" *\n *")
_NON_SPACE = re.compile(r"\S")


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    start: int  # character offsets into the normalised text
    end: int
    text: str


def normalise(text: str) -> str:
    """One spelling of whitespace: `\\n` line ends, single spaces, at most one blank line
    between paragraphs (extracted PDFs and HTML are full of runs of both), no control
    characters, no surrounding space."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = "".join(char for char in text if char >= " " or char in "\n\t")
    text = _SPACES.sub(" ", text)
    text = _LINE_EDGES.sub("\n", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def split_text(text: str, chunk_size: int = 1000, chunk_overlap: int = 200) -> list[Chunk]:
    """Chunks of the normalised `text`, in order. Each is at most `chunk_size` characters;
    neighbours share at most `chunk_overlap` characters; together they cover the text."""
    if chunk_size < 1 or not 0 <= chunk_overlap < chunk_size:
        raise ValueError("expected chunk_size >= 1 and 0 <= chunk_overlap < chunk_size")
    text = normalise(text)
    pieces = list(_pieces(text, 0, len(text), 0, chunk_size))
    chunks: list[Chunk] = []
    first = 0
    while first < len(pieces):
        last = first
        while last + 1 < len(pieces) and pieces[last + 1][1] - pieces[first][0] <= chunk_size:
            last += 1
        start, end = pieces[first][0], pieces[last][1]
        body = text[start:end]
        stripped = body.strip()
        chunk_start = -1
        if stripped:
            chunk_start = start + len(body) - len(body.lstrip())
            chunks.append(Chunk(len(chunks), chunk_start, chunk_start + len(stripped), stripped))
        if last + 1 == len(pieces):
            break
        # The next chunk starts with as many of this one's last pieces as fit in the overlap
        # (and leave room for at least one new piece), but always moves forward.
        following = last + 1
        while (
            following - 1 > first
            and end - pieces[following - 1][0] <= chunk_overlap
            and pieces[last + 1][1] - pieces[following - 1][0] <= chunk_size
            # A piece of only spaces would make the next chunk start where this one does.
            and _content_start(text, pieces[following - 1][0]) > chunk_start
        ):
            following -= 1
        first = following
    return chunks


def _content_start(text: str, position: int) -> int:
    """Where the first non-space character at or after `position` is."""
    found = _NON_SPACE.search(text, position)
    return found.start() if found else len(text)


def _pieces(text: str, start: int, end: int, level: int, size: int) -> Iterator[tuple[int, int]]:
    """Spans of text[start:end], each at most `size` long, cut at the coarsest boundaries
    (from `level` on) that make them fit."""
    if end - start <= size:
        yield start, end
        return
    if level == len(_BOUNDARIES):
        for cut in range(start, end, size):  # no boundary at all: cut anywhere
            yield cut, min(cut + size, end)
        return
    position = start
    for match in _BOUNDARIES[level].finditer(text, start, end):
        if match.end() <= position or match.end() >= end:
            continue
        yield from _pieces(text, position, match.end(), level + 1, size)
        position = match.end()
    yield from _pieces(text, position, end, level + 1, size)
