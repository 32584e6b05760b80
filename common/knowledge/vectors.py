"""What the gateway's side of embeddings needs, without NumPy (~15 MiB of RSS per worker):
the stored width, the error, pgvector's text and binary forms, and the one-question interface.

The full interface (batches, NumPy arrays) is common/knowledge/embedding.py, for the worker.
"""

from __future__ import annotations

import functools
import struct
import sys
from array import array
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal, Protocol, SupportsFloat

if TYPE_CHECKING:
    import asyncpg

# The width of knowledge_chunks.embedding (migrations/0003): every backend must produce it.
STORED_DIMENSION = 384
LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"
# The local model's forward pass (`EMBEDDING_RUNTIME`, common/knowledge/minilm.py).
Runtime = Literal["onnx", "numpy"]
RUNTIMES: tuple[Runtime, ...] = ("onnx", "numpy")


class EmbeddingError(Exception):
    """The embedding backend failed (unreachable, refused, or answered nonsense)."""


class QuestionEmbedder(Protocol):
    """One question in, its unit vector out: what the hot path asks of a backend."""

    @property
    def model(self) -> str:
        """`backend/model`, as recorded with every chunk (e.g. `local/all-MiniLM-L6-v2`)."""
        ...

    async def embed_question(self, text: str) -> Sequence[float]:
        """Raises EmbeddingError."""
        ...

    async def aclose(self) -> None: ...


def pgvector_literal(vector: Iterable[SupportsFloat]) -> str:
    """pgvector's text form, `[0.1,-0.2,...]`, each value to 7 significant digits (asyncpg
    sends it as text; SQL casts it). One %-format of a template per width: ~35% less CPU
    than formatting value by value, on the event loop of every knowledge call."""
    values = tuple(map(float, vector))
    return _literal_template(len(values)) % values


@functools.lru_cache(maxsize=4)
def _literal_template(width: int) -> str:
    return "[" + ",".join(["%.7g"] * width) + "]"


# pgvector's binary form (vector_send/vector_recv): dimensions and a reserved 0 as big-endian
# int16s, then the values as big-endian float4s.
_BINARY_HEADER = struct.Struct(">HH")


def vector_binary(vector: Iterable[SupportsFloat] | str) -> bytes:
    """The binary form, asyncpg's encoder for `vector` on a connection set up by
    `use_binary_vectors`: a copy and a byte swap of the float32 row the embedding service
    sent (a few µs, where formatting the text form cost ~100 µs of the event loop's time per
    knowledge call). A text literal, `[0.1,...]`, is taken too: code written for the text
    form works unchanged on such a connection."""
    if isinstance(vector, str):
        inner = vector.strip().removeprefix("[").removesuffix("]").strip()
        values = array("f", map(float, inner.split(","))) if inner else array("f")
    elif (row := _float32_row(vector)) is not None:
        values = array("f")
        values.frombytes(row.cast("B"))
    else:
        values = array("f", map(float, vector))
    if sys.byteorder == "little":
        values.byteswap()
    return _BINARY_HEADER.pack(len(values), 0) + values.tobytes()


def _float32_row(vector: object) -> memoryview | None:
    """The vector's float32s as they lie in memory (an array("f"), a NumPy row), if so."""
    try:
        view = memoryview(vector)  # type: ignore[arg-type]
    except TypeError:
        return None
    return view if view.format == "f" and view.ndim == 1 and view.c_contiguous else None


def vector_from_binary(data: bytes) -> array[float]:
    """asyncpg's decoder for `vector` on such a connection: the values as float32s."""
    dimensions, _ = _BINARY_HEADER.unpack_from(data)
    values = array("f", data[_BINARY_HEADER.size : _BINARY_HEADER.size + 4 * dimensions])
    if sys.byteorder == "little":
        values.byteswap()
    return values


async def use_binary_vectors(connection: asyncpg.Connection) -> bool:
    """Send and read pgvector's `vector` in its binary form on this connection (what
    common/knowledge/retrieval.py needs); False, and nothing changed, where pgvector is not
    installed (knowledge_chunks.embedding is then real[], migrations/0003)."""
    schema = await connection.fetchval(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = 'vector'"
    )
    if schema is None:
        return False
    await connection.set_type_codec(
        "vector", schema=schema, encoder=vector_binary, decoder=vector_from_binary,
        format="binary",
    )  # fmt: skip
    return True
