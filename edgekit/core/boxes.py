"""Box geometry: formats, IoU and non-maximum suppression. numpy only, vectorized.

Boxes are ``(N, 4)`` float arrays. ``xyxy`` is ``(x0, y0, x1, y1)``; ``cxcywh`` is
``(cx, cy, w, h)``; ``yxyx`` is ``(y0, x0, y1, x1)`` (TFLite SSD order). Functions never
return NaN for finite input: degenerate (zero-area or inverted) boxes have IoU 0 with everything.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "area",
    "batched_nms",
    "clip01",
    "cxcywh_to_xyxy",
    "iou",
    "nms",
    "xyxy_to_cxcywh",
    "xyxy_to_yxyx",
    "yxyx_to_xyxy",
]


def _as_boxes(boxes: np.ndarray, name: str = "boxes") -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {arr.shape}")
    return arr


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """``(cx, cy, w, h)`` -> ``(x0, y0, x1, y1)``."""
    b = _as_boxes(boxes)
    half = b[:, 2:4] / 2.0
    return np.concatenate([b[:, 0:2] - half, b[:, 0:2] + half], axis=1)


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    """``(x0, y0, x1, y1)`` -> ``(cx, cy, w, h)``."""
    b = _as_boxes(boxes)
    wh = b[:, 2:4] - b[:, 0:2]
    return np.concatenate([b[:, 0:2] + wh / 2.0, wh], axis=1)


def yxyx_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """``(y0, x0, y1, x1)`` -> ``(x0, y0, x1, y1)``."""
    b = _as_boxes(boxes)
    return b[:, [1, 0, 3, 2]]


def xyxy_to_yxyx(boxes: np.ndarray) -> np.ndarray:
    """``(x0, y0, x1, y1)`` -> ``(y0, x0, y1, x1)`` (the same swap, its own inverse)."""
    return yxyx_to_xyxy(boxes)


def clip01(boxes: np.ndarray) -> np.ndarray:
    """Clip coordinates to ``[0, 1]``; NaN becomes 0 (so results are always finite)."""
    b = np.asarray(boxes, dtype=np.float64)
    return np.clip(np.nan_to_num(b, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def area(boxes: np.ndarray) -> np.ndarray:
    """Area of ``xyxy`` boxes; inverted boxes have area 0."""
    b = _as_boxes(boxes)
    wh = np.clip(b[:, 2:4] - b[:, 0:2], 0.0, None)
    return wh[:, 0] * wh[:, 1]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``xyxy`` boxes: ``(N, 4) x (M, 4) -> (N, M)``; 0 where the union is empty."""
    a = _as_boxes(a, "a")
    b = _as_boxes(b, "b")
    with np.errstate(over="ignore", invalid="ignore"):
        return _iou(a, b)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    area_a = area(a)
    area_b = area(b)
    lt = np.maximum(a[:, None, 0:2], b[None, :, 0:2])
    rb = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float = 0.5,
    max_output: int | None = None,
) -> np.ndarray:
    """Greedy NMS. Returns indices into ``boxes`` (int64), by descending score.

    A box is dropped when its IoU with an already kept, higher-scored box is > ``iou_threshold``.
    Ties in score keep the lower index first (stable). NaN scores are treated as lowest.
    """
    b = _as_boxes(boxes)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.shape[0] != b.shape[0]:
        raise ValueError(f"scores has {s.shape[0]} entries but boxes has {b.shape[0]}")
    if max_output is not None and max_output <= 0:
        return np.zeros(0, dtype=np.int64)
    n = b.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    s = np.where(np.isnan(s), -np.inf, s)
    order = np.argsort(-s, kind="stable")
    limit = n if max_output is None else min(int(max_output), n)
    b = b[order]
    with np.errstate(over="ignore", invalid="ignore"):
        keep = _greedy(b, order, float(iou_threshold), limit)
    return np.asarray(keep, dtype=np.int64)


def _greedy(b: np.ndarray, index: np.ndarray, iou_threshold: float, limit: int) -> list[int]:
    """The greedy loop over score-sorted boxes ``b``: take the first, drop the rest overlapping it
    by more than the threshold, repeat. Returns the ``index`` values kept.

    Works on compacted contiguous columns (cheapest per iteration in numpy); the loop runs once
    per *kept* box, never once per input box.
    """
    x0, y0, x1, y1 = (np.ascontiguousarray(b[:, k]) for k in range(4))
    areas = np.maximum(x1 - x0, 0.0) * np.maximum(y1 - y0, 0.0)
    keep: list[int] = []
    while index.size and len(keep) < limit:
        keep.append(int(index[0]))
        w = np.minimum(x1[0], x1[1:]) - np.maximum(x0[0], x0[1:])
        h = np.minimum(y1[0], y1[1:]) - np.maximum(y0[0], y0[1:])
        inter = np.maximum(w, 0.0) * np.maximum(h, 0.0)
        union = areas[0] + areas[1:] - inter
        # IoU > thr  <=>  inter > thr * union when union > 0; empty unions never suppress.
        m = ~((inter > iou_threshold * union) & (union > 0))
        x0, y0, x1, y1 = x0[1:][m], y0[1:][m], x1[1:][m], y1[1:][m]
        areas, index = areas[1:][m], index[1:][m]
    return keep


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    iou_threshold: float = 0.5,
    max_output: int | None = None,
) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other.

    Uses the coordinate-offset trick (each class shifted far apart) so one greedy pass does it.
    Returns indices into ``boxes`` by descending score.
    """
    b = _as_boxes(boxes)
    c = np.asarray(class_ids).reshape(-1)
    if c.shape[0] != b.shape[0]:
        raise ValueError(f"class_ids has {c.shape[0]} entries but boxes has {b.shape[0]}")
    if b.shape[0] == 0 or (max_output is not None and max_output <= 0):
        return np.zeros(0, dtype=np.int64)
    finite = b[np.isfinite(b)]
    span = float(np.abs(finite).max()) if finite.size else 0.0
    _, cls_index = np.unique(c, return_inverse=True)
    cls_index = cls_index.reshape(-1)
    offset = 2.0 * span + 1.0
    if offset * (int(cls_index.max()) + 1) < 1e12:
        shifted = b + (cls_index * offset)[:, None]
        return nms(shifted, scores, iou_threshold, max_output)
    # Coordinates too large for the offset trick to stay exact: one NMS per class.
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    kept = [
        np.flatnonzero(cls_index == k)[nms(b[cls_index == k], s[cls_index == k], iou_threshold)]
        for k in range(int(cls_index.max()) + 1)
    ]
    idx = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    ks = np.where(np.isnan(s[idx]), -np.inf, s[idx])
    idx = idx[np.lexsort((idx, -ks))]
    return idx[:max_output] if max_output is not None else idx
