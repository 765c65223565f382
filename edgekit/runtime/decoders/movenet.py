"""MoveNet SinglePose decoder: ``[1, 1, 17, 3]`` as ``(y, x, score)`` normalized."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgekit.core.keypoints import keypoints_box
from edgekit.core.types import Keypoint, ModelSpec, Pose
from edgekit.runtime.decoders.common import (
    PIXELS_0_255,
    Decode,
    Decoder,
    Outputs,
    Thresholds,
)

__all__ = ["DECODER", "decode"]


def decode(kps: np.ndarray, *, box_score_threshold: float | None = 0.2) -> Pose:
    """Decode MoveNet SinglePose output into one :class:`Pose` (normalized input coordinates).

    Accepts ``(1, 1, K, 3)``, ``(1, K, 3)`` or ``(K, 3)``. Coordinates are clipped to [0, 1],
    non-finite values become 0. The pose score is the mean keypoint score; its box is the
    bounding box of keypoints scoring >= ``box_score_threshold`` (no box when None or none pass).
    """
    a = np.asarray(kps, dtype=np.float64)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2 or a.shape[1] != 3 or a.shape[0] == 0:
        raise ValueError(
            f"MoveNet output must be (1, 1, K, 3) as (y, x, score), got {np.shape(kps)}"
        )
    a = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0)
    xy = np.clip(a[:, [1, 0]], 0.0, 1.0)
    scores = np.clip(a[:, 2], 0.0, 1.0)
    keypoints = tuple(
        Keypoint(float(x), float(y), float(s)) for (x, y), s in zip(xy, scores, strict=True)
    )
    box = None if box_score_threshold is None else keypoints_box(xy, scores, box_score_threshold)
    return Pose(keypoints, float(scores.mean()), box)


# --- the decoder: one output, one pose --------------------------------------------------------


def _recognise(outputs: Outputs) -> dict | None:
    return {} if outputs.shapes == [(1, 1, 17, 3)] else None


def _bind(spec: ModelSpec, details: Sequence[dict], name: str) -> Decode:
    def decode_single_pose(outs: Sequence[np.ndarray], t: Thresholds) -> list:
        return [decode(outs[0])]

    return decode_single_pose


DECODER = Decoder(
    "movenet",
    "pose",
    _bind,
    recognise=_recognise,
    input_domain=PIXELS_0_255,
    resize_mode="letterbox",
    known_as="MoveNet [1,1,17,3]",
)
