"""The normaliser: the same on both sides, the secret texts and the answer.

NFKC, casefold, format characters and combining marks deleted, then the text read as words
(runs of letters and digits; Han and kana one word per character). See the package docstring.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Final

WORD_UNITS: Final = 2  # a word of a spaced script
CJK_UNITS: Final = 1  # one Han ideograph or kana


def _deletable_class() -> str:
    """A regex class of the format characters and combining marks to delete after NFKC.
    The BMP is scanned (about 10 ms, once at import); beyond it only the tag characters and
    the variation selector supplement matter for text a model writes."""
    ranges: list[tuple[int, int]] = []
    deletable = {"Cf", "Mn", "Mc", "Me"}
    category = unicodedata.category
    start = -1
    for code in range(0x80, 0x10000):
        if category(chr(code)) in deletable:
            if start < 0:
                start = code
        elif start >= 0:
            ranges.append((start, code - 1))
            start = -1
    ranges += [(0xE0000, 0xE007F), (0xE0100, 0xE01EF), (0x1D173, 0x1D17A)]
    return "".join(
        f"\\U{low:08x}" if low == high else f"\\U{low:08x}-\\U{high:08x}" for low, high in ranges
    )


_CJK = (
    r"\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff"  # kana
    r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"  # Han
)
# Characters a segment may end with: whitespace, ASCII punctuation and controls, Han, CJK and
# full-width punctuation. None of them is ever joined by NFKC with the character after it in
# a way that changes the words (the only ASCII case, "<", "=" or ">" + U+0338, makes another
# separator), so folding text cut after one of them equals folding it whole. Kana are not
# here: a kana can take a following (semi-)voiced sound mark.
_CUT = (
    r"\s\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f\u3000-\u3003\u3008-\u3011"
    r"\u3400-\u4dbf\u4e00-\u9fff\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff5e"
)
_DELETE = re.compile(f"[{_deletable_class()}]+")
_WORD = re.compile(f"[{_CJK}]|[^\\W_{_CJK}]+")
ASCII_WORD = re.compile(r"[a-z0-9]+")
# In ASCII, `_CUT` is every character but a letter or digit, and a word is a run of those:
# `str.rstrip`/`strip` with these sets find a cut or a lone word in half a regex call's time.
ASCII_ALNUM: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ASCII_CUTS: Final = "".join(chr(code) for code in range(128) if chr(code) not in ASCII_ALNUM)
_CJK_CHAR = re.compile(f"[{_CJK}]")
LAST_CUT = re.compile(f"(?s:.*)[{_CUT}]")
_PIECE = re.compile(f"[^{_CUT}]*[{_CUT}]|[^{_CUT}]+")


def fold(text: str) -> str:
    if text.isascii():
        return text.lower()
    return _DELETE.sub("", unicodedata.normalize("NFKC", text).casefold())


def words(text: str) -> list[str]:
    """The normalised words of a text (see the package docstring)."""
    if text.isascii():
        return ASCII_WORD.findall(text.lower())
    return _WORD.findall(fold(text))


def normalise(text: str) -> str:
    """The normal form the guard compares: NFKC, casefolded, zero-width characters and
    combining marks dropped, punctuation and whitespace runs collapsed to one space."""
    return " ".join(words(text))


def word_units(word: str) -> int:
    return CJK_UNITS if _CJK_CHAR.match(word) else WORD_UNITS


def ngram_hashes(tokens: list[str], size: int) -> Iterable[int]:
    return map(hash, zip(*[tokens[offset:] for offset in range(size)], strict=False))


def words_at(segment: str, start: int, starts: list[int]) -> list[str]:
    """The words of a segment; appends each word's offset (`start` + its position in the
    segment) to `starts`. Outside ASCII a word's offset is that of its piece (the text after
    the previous cut character), which is at or before the word: never too late."""
    tokens: list[str] = []
    if segment.isascii():
        for found in ASCII_WORD.finditer(segment.lower()):
            tokens.append(found.group())
            starts.append(start + found.start())
        return tokens
    for piece in _PIECE.finditer(segment):
        text = piece.group()
        if text.isascii():
            for found in ASCII_WORD.finditer(text.lower()):
                tokens.append(found.group())
                starts.append(start + piece.start() + found.start())
        else:
            found_words = _WORD.findall(fold(text))
            tokens += found_words
            starts += [start + piece.start()] * len(found_words)
    return tokens
