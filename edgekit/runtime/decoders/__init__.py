"""Output decoders: pure functions from float model outputs to edgekit result types.

Every decoder takes already dequantized float arrays (see :func:`dequantize`) and returns
results in *normalized coordinates of the model input*; ``runtime.model`` maps them to the frame
with :class:`edgekit.core.letterbox.Transform`. Wrong shapes raise ``ValueError`` naming the
tensor; non-finite values never crash a decoder (such candidates are dropped).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgekit.core.boxes import clip01
from edgekit.core.types import Detection

__all__ = ["DECODER_NAMES", "dequantize", "label_for", "make_detections"]

#: The values ``ModelSpec.decoder`` may take, each served by one module here.
DECODER_NAMES = ("ssd_postprocess", "ssd_raw", "yolo", "yolo_nms", "movenet", "posenet", "classify")


def dequantize(
    array: np.ndarray,
    scale: float | Sequence[float] | np.ndarray,
    zero_point: int | Sequence[int] | np.ndarray,
    *,
    axis: int = -1,
) -> np.ndarray:
    """``(q - zero_point) * scale`` as float32.

    A scale of 0 (TFLite's marker for a float tensor) returns the array as float32 unchanged.
    Per-channel parameters (arrays) apply along ``axis``.
    """
    a = np.asarray(array)
    s = np.asarray(scale, dtype=np.float64)
    z = np.asarray(zero_point, dtype=np.float64)
    if s.size == 0 or (s.ndim == 0 and float(s) == 0.0) or (s.ndim > 0 and np.all(s == 0)):
        return a.astype(np.float32, copy=False)
    if (s.ndim > 0 and s.size > 1) or (z.ndim > 0 and z.size > 1):
        if a.ndim == 0:
            raise ValueError("per-channel quantization needs an array with a channel axis")
        shape = [1] * a.ndim
        shape[axis] = -1
        n = a.shape[axis]
        s = np.broadcast_to(s.reshape(-1), (n,)).reshape(shape) if s.size in (1, n) else None
        z = np.broadcast_to(z.reshape(-1), (n,)).reshape(shape) if z.size in (1, n) else None
        if s is None or z is None:
            raise ValueError(f"per-channel scale/zero_point do not match axis {axis} of size {n}")
    else:
        s = float(s.reshape(-1)[0])
        z = float(z.reshape(-1)[0]) if z.size else 0.0
    return ((a.astype(np.float64) - z) * s).astype(np.float32)


def label_for(labels: Sequence[str] | None, class_id: int, label_offset: int = 0) -> str:
    """``labels[class_id + label_offset]``, or "" when there is no such label."""
    if not labels:
        return ""
    i = int(class_id) + int(label_offset)
    return str(labels[i]) if 0 <= i < len(labels) else ""


def make_detections(
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    *,
    labels: Sequence[str] | None = None,
    label_offset: int = 0,
    max_detections: int | None = None,
) -> list[Detection]:
    """Clip boxes to [0, 1], drop non-finite or empty ones, sort by score, build Detections."""
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    c = np.asarray(class_ids).reshape(-1)
    ok = np.isfinite(s) & np.isfinite(b).all(axis=1)
    b, s, c = b[ok], s[ok], c[ok]
    # Order the corners, then clip: the box is what lies inside the model input.
    b = clip01(
        np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], axis=1)
    )
    nonempty = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    b, s, c = b[nonempty], s[nonempty], c[nonempty]
    order = np.argsort(-s, kind="stable")
    if max_detections is not None:
        order = order[: max(int(max_detections), 0)]
    out = []
    for i in order:
        cid = int(c[i])
        box = (float(b[i, 0]), float(b[i, 1]), float(b[i, 2]), float(b[i, 3]))
        out.append(Detection(box, cid, float(s[i]), label_for(labels, cid, label_offset)))
    return out


def valid_count(count: float | np.ndarray | None, n: int) -> int:
    """How many of ``n`` rows a post-processing op's ``count`` output says are valid: clipped to
    ``[0, n]``; ``None`` means all; +inf all, NaN/-inf none. Raises ``ValueError`` unless
    ``count`` is a single number."""
    if count is None:
        return n
    cnt = np.asarray(count, dtype=np.float64).reshape(-1)
    if cnt.size != 1:
        raise ValueError(f"count must be a single number, got shape {np.shape(count)}")
    v = float(cnt[0])
    return int(np.clip(v, 0, n)) if np.isfinite(v) else (n if v > 0 else 0)


def _class_ids(values: np.ndarray) -> np.ndarray:
    """Float class outputs -> int64, non-finite -> -1 (never raises on NaN/inf)."""
    v = np.asarray(values, dtype=np.float64)
    out = np.full(v.shape, -1, dtype=np.int64)
    ok = np.isfinite(v) & (np.abs(v) < 2**62)
    out[ok] = np.rint(v[ok]).astype(np.int64)
    return out
