"""The recursive splitter: bounded chunks that cover the text, break at the coarsest
boundary that fits, overlap by at most the overlap, and come out the same every time."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.knowledge.chunking import normalise, split_text

WORDS = st.text(alphabet="abcdefghij", min_size=1, max_size=14)
SENTENCE = st.lists(WORDS, min_size=1, max_size=30).map(lambda ws: " ".join(ws) + ".")
PARAGRAPH = st.lists(SENTENCE, min_size=1, max_size=12).map(" ".join)
DOCUMENT = st.lists(PARAGRAPH, min_size=1, max_size=8).map("\n\n".join)
SIZES = st.tuples(st.integers(20, 600), st.floats(0, 0.9)).map(
    lambda pair: (pair[0], int(pair[0] * pair[1]))
)


@settings(max_examples=100, deadline=None)
@given(DOCUMENT, SIZES)
def test_chunks_are_bounded_ordered_slices_that_cover_the_text(
    text: str, sizes: tuple[int, int]
) -> None:
    size, overlap = sizes
    clean = normalise(text)
    chunks = split_text(text, size, overlap)

    assert chunks, "a non-empty text makes at least one chunk"
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert 0 < len(chunk.text) <= size
        assert clean[chunk.start : chunk.end] == chunk.text
    for before, after in itertools.pairwise(chunks):
        assert before.start < after.start, "always moves forward"
        assert not clean[before.end : after.start].strip(), "no gap but whitespace"
        assert before.end - after.start <= overlap, "overlap is bounded"
    assert chunks[0].start == 0
    assert chunks[-1].end == len(clean)
    assert split_text(text, size, overlap) == chunks  # deterministic: resumable ingestion


def test_defaults_are_the_seeds_and_paragraphs_stay_whole_when_they_fit() -> None:
    paragraphs = [f"Paragraph {n}. " + "word " * 150 for n in range(6)]  # ~770 chars each
    chunks = split_text("\n\n".join(paragraphs))  # 1,000 / 200

    assert [c.text for c in chunks] == [p.strip() for p in paragraphs]


def test_a_long_paragraph_breaks_at_sentences_with_overlap() -> None:
    sentences = [f"Sentence number {n} says something about topic {n}." for n in range(60)]
    chunks = split_text(" ".join(sentences), chunk_size=300, chunk_overlap=100)

    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.text.startswith("Sentence number")
        assert chunk.text.endswith(".")
    # Neighbours share whole sentences.
    for before, after in itertools.pairwise(chunks):
        assert after.text.split(".")[0] + "." in before.text


def test_a_word_longer_than_a_chunk_is_cut() -> None:
    chunks = split_text("x" * 250, chunk_size=100, chunk_overlap=0)
    assert [len(c.text) for c in chunks] == [100, 100, 50]


def test_whitespace_is_normalised() -> None:
    assert normalise("  a\r\n\r\n\r\nb \t c\n  d\x00  ") == "a\n\nb c\nd"
    assert split_text("   \n\n  ") == []


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (100, 100), (100, -1)])
def test_bad_settings_are_refused(size: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="chunk"):
        split_text("text", size, overlap)


def test_a_piece_of_only_spaces_never_makes_two_chunks_start_at_one_place() -> None:
    # Found by a fuzzer: a whitespace-only piece stepped back into the overlap made the next
    # chunk start where the previous one did ('ab' and then 'ab cd').
    text = (
        ";Hello.\xa0a  )a))\nHello.word?)\t  \xa0ab cd \t\xa0;Hello.a?;ab cdx!\n\n"
        "bwordab cd \xa0\tx!"
    )
    chunks = split_text(text, 6, 4)
    starts = [chunk.start for chunk in chunks]
    assert starts == sorted(set(starts))
    clean = normalise(text)
    for chunk in chunks:
        assert clean[chunk.start : chunk.end] == chunk.text
