"""A sliding window over the last frames' timings: FPS and per-stage p50/p99 for the preview."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

from edgekit.core.latency import LatencyStats
from edgekit.core.types import STAGES, FrameResult

__all__ = ["StatsWindow"]


class StatsWindow:
    """The last ``size`` frames: arrival times, timings (ms) and the latest result.

    :meth:`add` is O(1) and called from the loop; :meth:`snapshot` does the arithmetic and is
    called from HTTP handler threads.
    """

    def __init__(self, size: int = 120, *, clock: Callable[[], float] = time.monotonic) -> None:
        if size < 2:
            raise ValueError(f"stats window size must be >= 2, got {size}")
        self.size = size
        self._clock = clock
        self._lock = threading.Lock()
        self._times: collections.deque[float] = collections.deque(maxlen=size)
        self._timings: collections.deque[dict[str, float]] = collections.deque(maxlen=size)
        self._latest: FrameResult | None = None
        self.frames = 0

    def add(self, result: FrameResult) -> None:
        now = self._clock()
        with self._lock:
            self._times.append(now)
            self._timings.append(result.timings)
            self._latest = result
            self.frames += 1

    @property
    def latest(self) -> FrameResult | None:
        return self._latest

    def snapshot(self) -> dict[str, Any]:
        """``{"frames", "fps", "window", "frame", "width", "height", "detections", "poses",
        "classes", "stages": {name: {"p50", "p99", "mean"}}}`` (ms; FPS over the window)."""
        with self._lock:
            times = list(self._times)
            timings = list(self._timings)
            latest = self._latest
            frames = self.frames
        fps = 0.0
        if len(times) >= 2 and times[-1] > times[0]:
            fps = (len(times) - 1) / (times[-1] - times[0])
        samples: dict[str, list[float]] = collections.defaultdict(list)
        for row in timings:
            for key, value in row.items():
                samples[key].append(float(value))
        # the stages in their order (core.types.STAGES), then any others alphabetically
        names = [n for n in STAGES if n in samples]
        names += sorted(n for n in samples if n not in STAGES)
        stages = {}
        for name in names:
            s = LatencyStats.of(samples[name])
            stages[name] = {
                "p50": round(s.p50_ms, 3),
                "p99": round(s.p99_ms, 3),
                "mean": round(s.mean_ms, 3),
            }
        out: dict[str, Any] = {
            "frames": frames,
            "fps": round(fps, 2),
            "window": len(times),
            "stages": stages,
        }
        if latest is not None:
            out.update(
                frame=int(latest.frame.index),
                width=latest.frame.width,
                height=latest.frame.height,
                detections=len(latest.detections),
                poses=len(latest.poses),
                classes=len(latest.classes),
            )
        return out
