"""Percentile summaries of latency samples (microseconds)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["percentile", "ratio", "summary"]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of an ascending sequence; NaN when empty.

    Nearest rank (no interpolation) so every reported number is a sample that happened.
    """
    n = len(sorted_values)
    if n == 0:
        return math.nan
    rank = max(1, math.ceil(q * n))
    return float(sorted_values[min(rank, n) - 1])


def summary(values: Iterable[float]) -> dict[str, float | int]:
    """``{"p50", "p90", "p99", "max", "mean", "n"}`` of ``values`` (rounded to 0.1 µs)."""
    v = sorted(float(x) for x in values)
    if not v:
        return {"n": 0}
    return {
        "p50": round(percentile(v, 0.50), 1),
        "p90": round(percentile(v, 0.90), 1),
        "p99": round(percentile(v, 0.99), 1),
        "max": round(v[-1], 1),
        "mean": round(sum(v) / len(v), 1),
        "n": len(v),
    }


def ratio(slow: Mapping[str, float] | None, fast: Mapping[str, float] | None, key: str = "p50") -> float | None:
    """``slow[key] / fast[key]`` rounded to 0.01, or None when either side is missing."""
    if not slow or not fast:
        return None
    a, b = slow.get(key), fast.get(key)
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 2)
