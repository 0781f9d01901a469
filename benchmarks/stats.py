"""Latency statistics shared by the benchmarks, so every figure they report is computed one way."""
from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(ordered: Sequence[float], rank: float) -> float:
    """Nearest-rank percentile of already sorted samples (0 when there are none)."""
    if not ordered:
        return 0.0
    # The smallest sample with at least `rank` percent of them at or below it. Multiplying first keeps
    # whole ranks exact (7 * 100 / 100 is 7.0 where 7 / 100 * 100 is 7.000000000000001).
    index = max(0, min(len(ordered) - 1, math.ceil(rank * len(ordered) / 100) - 1))
    return ordered[index]
