"""An admitted call's headers say what a refused call's say, in the same spelling."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.admission import _CALL_HEADERS, Admission, _rate_header_values

counts = st.integers(min_value=-(10**6), max_value=10**15)


@given(
    rate=st.tuples(counts, counts, counts, counts),
    cost=st.tuples(st.integers(0, 10**6), st.integers(0, 100), st.sampled_from(["quota", "trial"])),
)
def test_call_headers_are_the_rate_headers_and_the_cost_as_decimal_text(
    rate: tuple[int, int, int, int], cost: tuple[int, int, str]
) -> None:
    """Property: the bytes of `Admission.headers()` are `_rate_header_values` (the refusals'
    spelling) and the units charged and trials left, as str() writes them."""
    (limit, remaining, reset_ms, quota), (units, trials, charge) = rate, cost
    admission = Admission("call", 0, "user", "key", "agent", 1, limit, remaining, reset_ms,
                          quota, charge, units, trials_remaining=trials)  # fmt: skip
    values = [*_rate_header_values(limit, remaining, reset_ms, quota),
              str(units if charge == "quota" else 0), str(trials)]  # fmt: skip
    expected = [(name.encode(), value.encode()) for name, value in zip(_CALL_HEADERS, values,
                                                                        strict=True)]  # fmt: skip
    assert admission.headers() == expected
