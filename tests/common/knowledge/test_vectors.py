"""pgvector's text form of a vector, as the worker sends it, and its binary form, as the
gateway's retrieval sends it."""

from __future__ import annotations

from array import array

import asyncpg
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from common.knowledge.vectors import (
    pgvector_literal,
    use_binary_vectors,
    vector_binary,
    vector_from_binary,
)

finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


@given(st.lists(finite, max_size=400))
def test_the_literal_is_each_value_to_seven_significant_digits_in_order(
    values: list[float],
) -> None:
    literal = pgvector_literal(values)
    assert literal == "[" + ",".join(format(value, ".7g") for value in values) + "]"
    if values:
        parsed = [float(text) for text in literal[1:-1].split(",")]
        assert np.allclose(parsed, values, rtol=1e-6, atol=0)


def test_float32_rows_and_arrays_give_the_same_text() -> None:
    row = np.array([0.1, -0.25, 1e-8, 3.0], dtype=np.float32)
    expected = "[0.1,-0.25,1e-08,3]"
    assert pgvector_literal(row) == pgvector_literal(array("f", row)) == expected
    assert pgvector_literal([]) == "[]"


@given(st.lists(finite, max_size=400))
def test_property_the_binary_form_carries_each_float32_in_order(values: list[float]) -> None:
    sent = vector_binary(values)
    assert sent[:4] == len(values).to_bytes(2, "big") + b"\0\0"
    assert list(vector_from_binary(sent)) == values
    # The same bytes whatever holds the values: a float32 row, an array, a text literal.
    assert vector_binary(np.array(values, dtype=np.float32)) == sent
    assert vector_binary(array("f", values)) == sent
    assert vector_from_binary(vector_binary(pgvector_literal(values))) == array(
        "f", [float(text) for text in pgvector_literal(values)[1:-1].split(",") if text]
    )


async def test_postgres_reads_the_binary_form_exactly(db_pool: asyncpg.Pool) -> None:
    row = np.random.default_rng(7).standard_normal(384).astype(np.float32)
    async with db_pool.acquire() as connection:
        assert await use_binary_vectors(connection)
        # Sent and read back in binary: every float32 bit for bit (the text form keeps 7
        # significant digits of the 9 a float32 needs).
        assert await connection.fetchval("SELECT $1::vector", row) == array("f", row)
        as_text = await connection.fetchval("SELECT $1::vector::text", row)
        assert np.allclose([float(v) for v in as_text[1:-1].split(",")], row, rtol=1e-6)
        distance = await connection.fetchval(
            "SELECT $1::vector <=> $2::text::vector", row, pgvector_literal(row)
        )
        assert abs(distance) < 1e-6
        # A text literal still goes through the binary codec (code written for the text form).
        assert await connection.fetchval("SELECT $1::vector", pgvector_literal(row)) == array(
            "f", [float(v) for v in pgvector_literal(row)[1:-1].split(",")]
        )
