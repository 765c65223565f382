"""One frame through a model: the ``step`` the real-time loop calls."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edgekit.core.types import Frame, FrameResult

__all__ = ["make_step"]


def make_step(
    model: Any, *, clock: Callable[[], float] = time.perf_counter, **thresholds: Any
) -> Callable[[Frame], FrameResult]:
    """Return ``step(frame) -> FrameResult`` running ``model`` (a :class:`~edgekit.runtime.model.Model`).

    ``thresholds`` (``score_threshold``, ``iou_threshold``, ``max_results``) go to
    ``model.postprocess``. ``FrameResult.timings`` holds milliseconds for "preprocess",
    "invoke" and "postprocess", measured with ``clock`` (seconds).
    """
    unknown = set(thresholds) - {"score_threshold", "iou_threshold", "max_results"}
    if unknown:
        raise TypeError(f"make_step got unexpected keyword arguments {sorted(unknown)}")
    preprocess, invoke, postprocess = model.preprocess, model.invoke, model.postprocess

    def step(frame: Frame) -> FrameResult:
        t0 = clock()
        tensor, transform = preprocess(frame.inference_image)  # lores when the source has one
        t1 = clock()
        outputs = invoke(tensor)
        t2 = clock()
        pred = postprocess(outputs, transform, **thresholds)
        t3 = clock()
        return FrameResult(
            frame=frame,
            detections=pred.detections,
            poses=pred.poses,
            classes=pred.classes,
            timings={
                "preprocess": (t1 - t0) * 1e3,
                "invoke": (t2 - t1) * 1e3,
                "postprocess": (t3 - t2) * 1e3,
            },
        )

    return step
