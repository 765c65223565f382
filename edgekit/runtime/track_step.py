"""A step wrapper that adds ``track_id`` to each frame's detections (``edgekit detect --track``)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from edgekit.core.tracking import Tracker, TrackerConfig
from edgekit.core.types import Frame, FrameResult

__all__ = ["make_tracking_step"]


def make_tracking_step(
    step: Callable[[Frame], FrameResult],
    tracker: Tracker | None = None,
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> Callable[[Frame], FrameResult]:
    """Return ``step`` followed by ``tracker.update`` on its detections.

    The tracker (default: a new :class:`Tracker` with :class:`TrackerConfig` defaults) keeps
    state between calls, so frames must arrive in order from one stream and the returned step
    must not run on two threads at once (the loop's inference thread calls it serially).
    ``timings["track"]`` holds the milliseconds the tracker took.
    """
    tracker = tracker if tracker is not None else Tracker(TrackerConfig())

    def tracking_step(frame: Frame) -> FrameResult:
        result = step(frame)
        t0 = clock()
        detections = tracker.update(result.detections)
        t1 = clock()
        timings = dict(result.timings)
        timings["track"] = (t1 - t0) * 1e3
        return dataclasses.replace(result, detections=detections, timings=timings)

    tracking_step.tracker = tracker  # type: ignore[attr-defined]
    return tracking_step
