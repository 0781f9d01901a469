"""Latency statistics shared by the benchmarks, so every figure they report is computed one way."""
from __future__ import annotations

from collections.abc import Sequence


def percentile(ordered: Sequence[float], rank: float) -> float:
    """Nearest-rank percentile of already sorted samples (0 when there are none)."""
    if not ordered:
        return 0.0
    index = max(0, min(len(ordered) - 1, round(rank / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]
