"""Latency summaries: the one type the bench, the camera loop and the preview report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["LatencyStats"]


@dataclass(frozen=True)
class LatencyStats:
    """Distribution of one stage's times in milliseconds: sample count, mean, population std
    and percentiles (linear interpolation). All NaN (count 0) when there are no samples."""

    count: int
    mean_ms: float
    std_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @classmethod
    def of(cls, samples_ms: Sequence[float] | np.ndarray) -> LatencyStats:
        a = np.asarray(samples_ms, dtype=np.float64).reshape(-1)
        if a.size == 0:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan, nan)
        p50, p90, p99 = np.percentile(a, [50, 90, 99])
        return cls(int(a.size), float(a.mean()), float(a.std()), float(p50), float(p90), float(p99))

    def to_dict(self, digits: int = 4) -> dict[str, float]:
        """``{"p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms"}``, rounded (the count is the
        caller's: a bench's ``runs``, a loop's frames)."""
        keys = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms")
        return {k: round(getattr(self, k), digits) for k in keys}
