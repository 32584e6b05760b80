"""Latency histograms: the bucket bounds (the same list as SQL's latency_bucket_bounds()), and
percentiles read from merged histograms.

Bucket i counts latencies in [BOUNDS[i], BOUNDS[i + 1]) ms; the bounds grow by about 2^(1/4)
(19%), so a percentile read here, interpolated inside its bucket, is within half a bucket
(~10%) of the exact value. Histograms add bucket by bucket, which is what makes percentiles
over any set of hours, days or agents computable from rollups; exact percentiles would need
every latency.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Sequence

BOUNDS: tuple[int, ...] = tuple(sorted({0, *(round(2 ** (i / 4)) for i in range(74))}))
SIZE = len(BOUNDS)
_LAST_WIDTH_RATIO = 2 ** (1 / 4)


def bucket_of(latency_ms: int) -> int:
    """The 0-based bucket of a latency (SQL's width_bucket minus one)."""
    low, high = 0, SIZE - 1
    value = max(latency_ms, 0)
    while low < high:
        middle = (low + high + 1) // 2
        if BOUNDS[middle] <= value:
            low = middle
        else:
            high = middle - 1
    return low


def merge(histograms: Iterable[Sequence[int]]) -> list[int]:
    """Bucket-by-bucket sums (zip and sum run in C: thousands of histograms in a few ms)."""
    merged = [sum(counts) for counts in zip(*histograms, strict=True)]
    return merged or [0] * SIZE


def percentiles(histogram: Sequence[int], quantiles: Sequence[float]) -> list[int | None]:
    """The latency in ms at each quantile (0 < q <= 1), interpolated inside its bucket; None
    for an empty histogram. One pass for all the quantiles."""
    cumulative = list(itertools.accumulate(histogram))
    count = cumulative[-1] if cumulative else 0
    if count == 0:
        return [None] * len(quantiles)
    found: list[int | None] = []
    for quantile in quantiles:
        rank = max(1, math.ceil(quantile * count))
        index = bisect.bisect_left(cumulative, rank)  # the first bucket reaching the rank
        in_bucket = histogram[index]
        lower = BOUNDS[index]
        upper = BOUNDS[index + 1] if index + 1 < SIZE else lower * _LAST_WIDTH_RATIO
        position = (rank - (cumulative[index] - in_bucket) - 0.5) / in_bucket
        found.append(math.floor(lower + (upper - lower) * position))
    return found


def percentile(histogram: Sequence[int], quantile: float) -> int | None:
    return percentiles(histogram, (quantile,))[0]
