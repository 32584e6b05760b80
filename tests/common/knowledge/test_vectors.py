"""pgvector's text form of a vector, as the gateway and the worker send it."""

from __future__ import annotations

from array import array

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from common.knowledge.vectors import pgvector_literal

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
