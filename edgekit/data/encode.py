"""Target encoding: ground-truth boxes/keypoints -> what each zoo head's loss compares against.

numpy functions (exact, unit-tested against the runtime decoders), plus ``make_encode_fn`` which
wraps them with ``tf.numpy_function`` as the pipeline's ``encode_fn`` hook. Inputs are the
pipeline's padded targets: ``boxes`` (M, 4) normalized xyxy of the model input, ``class_ids``
(M,) with -1 for padding rows, ``keypoints`` (M, P, 3) as (x, y, visibility).

- **SSD** (``ssd_encode``): anchors ``(cy, cx, h, w)`` matched by IoU (>= ``pos_iou`` positive,
  < ``neg_iou`` background, in between ignored, and each box's best anchor forced positive), box
  coder ``ty = (cy - cya) / ha * 10``, ``th = log(h / ha) * 5`` (scales (10, 10, 5, 5)): the exact
  inverse of ``edgekit.runtime.decoders.ssd.decode_boxes``.
- **YOLO** (``yolo_encode``, the zoo's anchor-free head): each box goes to ONE scale chosen by its
  longest side in input pixels (FCOS ranges: <= 64 px stride 8, <= 128 px stride 16, else 32);
  at that scale its positives are the cells whose centre lies inside the box and within
  ``center_radius`` strides of the box centre (centre sampling), or, for boxes too small to
  contain a cell centre, the cell holding the box centre. A cell claimed by several boxes keeps
  the smallest. Regression targets are the distances ``(l, t, r, b)`` from the cell centre to the
  box edges in stride units, as the head predicts them.
- **Pose** (``pose_encode``, MoveNet-style heads at stride 4): Gaussian heatmaps (CenterNet radius)
  for the person centres and each keypoint, peak 1 at the cell ``floor(pos * grid)``; sub-cell
  offsets ``frac(pos * grid)`` at keypoint cells; centre-to-keypoint regression at centre cells,
  in cell-index units (what ``edgekit.zoo.pose.MoveNetDecode`` adds to the centre cell).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgekit.core.boxes import iou

__all__ = [
    "SSD_SCALES",
    "YOLO_SIZE_RANGES",
    "gaussian_radius",
    "make_encode_fn",
    "pose_encode",
    "ssd_encode",
    "ssd_encode_boxes",
    "yolo_encode",
    "yolo_levels",
]

SSD_SCALES: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
#: Longest box side (input pixels) up to which each YOLO stride is responsible.
YOLO_SIZE_RANGES: tuple[tuple[int, float], ...] = ((8, 64.0), (16, 128.0), (32, math.inf))


def _valid(boxes: np.ndarray, class_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    c = np.asarray(class_ids, np.int64).reshape(-1)
    keep = (c >= 0) & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    return b[keep], c[keep], np.nonzero(keep)[0]


# --------------------------------------------------------------------------------------- SSD
def ssd_encode_boxes(
    boxes_xyxy: np.ndarray, anchors: np.ndarray, scales: Sequence[float] = SSD_SCALES
) -> np.ndarray:
    """Encode boxes (A, 4) xyxy against anchors (A, 4) ``(cy, cx, h, w)`` -> ``(ty, tx, th, tw)``."""
    b = np.asarray(boxes_xyxy, np.float64)
    a = np.asarray(anchors, np.float64)
    sy, sx, sh, sw = (float(s) for s in scales)
    h = np.maximum(b[:, 3] - b[:, 1], 1e-8)
    w = np.maximum(b[:, 2] - b[:, 0], 1e-8)
    cy = (b[:, 1] + b[:, 3]) / 2
    cx = (b[:, 0] + b[:, 2]) / 2
    return np.stack(
        [
            (cy - a[:, 0]) / a[:, 2] * sy,
            (cx - a[:, 1]) / a[:, 3] * sx,
            np.log(h / a[:, 2]) * sh,
            np.log(w / a[:, 3]) * sw,
        ],
        axis=1,
    ).astype(np.float32)


def ssd_encode(
    boxes: np.ndarray,
    class_ids: np.ndarray,
    anchors: np.ndarray,
    *,
    scales: Sequence[float] = SSD_SCALES,
    pos_iou: float = 0.5,
    neg_iou: float = 0.4,
) -> tuple[np.ndarray, np.ndarray]:
    """Match boxes to anchors.

    Returns ``box_targets`` (A, 5): the encoding ``(ty, tx, th, tw)`` of each anchor's box and a
    positive flag in column 4; ``class_targets`` (A,) int32: 0 background, ``c + 1`` for class
    ``c`` (the head's column, background first), -1 ignored (IoU between the thresholds).
    """
    a = np.asarray(anchors, np.float64)
    n = a.shape[0]
    box_t = np.zeros((n, 5), np.float32)
    cls_t = np.zeros(n, np.int32)
    b, c, _ = _valid(boxes, class_ids)
    if b.shape[0] == 0:
        return box_t, cls_t
    anchor_xyxy = np.stack(
        [
            a[:, 1] - a[:, 3] / 2,
            a[:, 0] - a[:, 2] / 2,
            a[:, 1] + a[:, 3] / 2,
            a[:, 0] + a[:, 2] / 2,
        ],
        1,
    )
    overlaps = iou(anchor_xyxy, b)  # (A, M)
    best_gt = overlaps.argmax(axis=1)
    best_iou = overlaps[np.arange(n), best_gt]
    # Force-match: each box's best anchor is positive for that box (in box order; later boxes win).
    best_anchor = overlaps.argmax(axis=0)
    best_gt[best_anchor] = np.arange(b.shape[0])
    best_iou[best_anchor] = 1.0
    positive = best_iou >= pos_iou
    ignore = (best_iou >= neg_iou) & ~positive
    cls_t[positive] = c[best_gt[positive]] + 1
    cls_t[ignore] = -1
    if positive.any():
        box_t[positive, :4] = ssd_encode_boxes(b[best_gt[positive]], a[positive], scales)
        box_t[positive, 4] = 1.0
    return box_t, cls_t


# -------------------------------------------------------------------------------------- YOLO
def yolo_levels(
    input_size: Sequence[int], strides: Sequence[int] = (8, 16, 32)
) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres ``(N, 2)`` as ``(x, y)`` in input pixels and each cell's stride ``(N,)``,
    in the zoo's order (stride 8 first, row-major): ``edgekit.zoo.yolo.yolo_grid`` in pixels."""
    h, w = (int(v) for v in input_size)
    points, cell_strides = [], []
    for s in strides:
        gh, gw = math.ceil(h / s), math.ceil(w / s)
        ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        points.append(np.stack([(xs.ravel() + 0.5) * s, (ys.ravel() + 0.5) * s], axis=1))
        cell_strides.append(np.full(gh * gw, float(s)))
    return np.concatenate(points).astype(np.float64), np.concatenate(cell_strides)


def _stride_for(max_side_px: float, strides: Sequence[int]) -> int:
    ranges = dict(YOLO_SIZE_RANGES)
    for s in strides:
        if max_side_px <= ranges.get(int(s), math.inf):
            return int(s)
    return int(strides[-1])


def yolo_encode(
    boxes: np.ndarray,
    class_ids: np.ndarray,
    input_size: Sequence[int],
    num_classes: int,
    *,
    strides: Sequence[int] = (8, 16, 32),
    center_radius: float = 2.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Assign boxes to the cells of the anchor-free head (module docstring).

    Returns ``box_targets`` (N, 5): ``(l, t, r, b)`` in stride units and a positive flag, and
    ``class_targets`` (N, C): one-hot at positives, zero elsewhere (every cell is scored by the
    class BCE, so negatives learn "no object").
    """
    h, w = (int(v) for v in input_size)
    points, cell_strides = yolo_levels((h, w), strides)
    n = points.shape[0]
    box_t = np.zeros((n, 5), np.float32)
    cls_t = np.zeros((n, int(num_classes)), np.float32)
    b, c, _ = _valid(boxes, class_ids)
    if b.shape[0] == 0:
        return box_t, cls_t
    px = b * np.array([w, h, w, h], np.float64)
    areas = (px[:, 2] - px[:, 0]) * (px[:, 3] - px[:, 1])
    best_area = np.full(n, np.inf)
    owner = np.full(n, -1, np.int64)
    for k in range(px.shape[0]):
        x0, y0, x1, y1 = px[k]
        s = _stride_for(max(x1 - x0, y1 - y0), strides)
        level = cell_strides == s
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        inside = (
            (points[:, 0] > x0) & (points[:, 0] < x1) & (points[:, 1] > y0) & (points[:, 1] < y1)
        )
        near = (np.abs(points[:, 0] - cx) < center_radius * s) & (
            np.abs(points[:, 1] - cy) < center_radius * s
        )
        cand = level & inside & near
        if not cand.any():  # too small to hold a cell centre: the cell containing its centre
            d = np.where(level, np.abs(points[:, 0] - cx) + np.abs(points[:, 1] - cy), np.inf)
            cand = np.zeros(n, bool)
            cand[int(d.argmin())] = True
        take = cand & (areas[k] < best_area)
        owner[take] = k
        best_area[take] = areas[k]
    pos = owner >= 0
    g = px[owner[pos]]
    p, s = points[pos], cell_strides[pos][:, None]
    ltrb = (
        np.stack([p[:, 0] - g[:, 0], p[:, 1] - g[:, 1], g[:, 2] - p[:, 0], g[:, 3] - p[:, 1]], 1)
        / s
    )
    box_t[pos, :4] = np.maximum(ltrb, 0.0)
    box_t[pos, 4] = 1.0
    cls_t[np.nonzero(pos)[0], c[owner[pos]]] = 1.0
    return box_t, cls_t


# -------------------------------------------------------------------------------------- pose
def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius (in cells) within which a box shifted by it keeps IoU >= min_overlap."""
    a1, b1 = 1.0, height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return max(0.0, min(r1, r2, r3))


def _draw_gaussian(heatmap: np.ndarray, cy: int, cx: int, sigma: float) -> None:
    gh, gw = heatmap.shape
    ys = np.arange(gh)[:, None]
    xs = np.arange(gw)[None, :]
    g = np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * sigma * sigma))
    np.maximum(heatmap, g, out=heatmap)


def pose_encode(
    boxes: np.ndarray,
    class_ids: np.ndarray,
    keypoints: np.ndarray,
    grid: Sequence[int],
    *,
    min_sigma: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Targets of the four raw pose heads on a ``grid`` (Hg, Wg) (stride 4 of the input).

    Returns ``center`` (Hg, Wg, 1), ``regression`` (Hg, Wg, 3K): ``(dy, dx)`` per keypoint then a
    K-channel mask, ``heatmaps`` (Hg, Wg, K), ``offsets`` (Hg, Wg, 3K): ``(oy, ox)`` per keypoint
    then a K-channel mask. Only persons with at least one labelled keypoint count.
    """
    gh, gw = (int(v) for v in grid)
    kps_all = np.asarray(keypoints, np.float64)
    k = kps_all.shape[1]
    center = np.zeros((gh, gw), np.float64)
    heat = np.zeros((k, gh, gw), np.float64)
    reg = np.zeros((gh, gw, 3 * k), np.float32)
    off = np.zeros((gh, gw, 3 * k), np.float32)
    b, _, rows = _valid(boxes, class_ids)
    for box, row in zip(b, rows, strict=False):
        kps = kps_all[row]
        labelled = kps[:, 2] > 0
        if not labelled.any():
            continue
        bh, bw = (box[3] - box[1]) * gh, (box[2] - box[0]) * gw
        sigma = max(min_sigma, (2 * gaussian_radius(bh, bw) + 1) / 6)
        cyf, cxf = (box[1] + box[3]) / 2 * gh, (box[0] + box[2]) / 2 * gw
        ccy, ccx = min(int(cyf), gh - 1), min(int(cxf), gw - 1)
        _draw_gaussian(center, ccy, ccx, sigma)
        for j in np.nonzero(labelled)[0]:
            ky, kx = kps[j, 1] * gh, kps[j, 0] * gw
            iy, ix = min(int(ky), gh - 1), min(int(kx), gw - 1)
            _draw_gaussian(heat[j], iy, ix, sigma)
            off[iy, ix, 2 * j] = ky - iy
            off[iy, ix, 2 * j + 1] = kx - ix
            off[iy, ix, 2 * k + j] = 1.0
            reg[ccy, ccx, 2 * j] = (ky - 0.5) - ccy
            reg[ccy, ccx, 2 * j + 1] = (kx - 0.5) - ccx
            reg[ccy, ccx, 2 * k + j] = 1.0
    return (
        center[..., None].astype(np.float32),
        reg,
        np.transpose(heat, (1, 2, 0)).astype(np.float32),
        off,
    )


# ------------------------------------------------------------------------------ tf.data hook
def make_encode_fn(kind: str, **params: Any) -> Any:
    """The pipeline ``encode_fn`` for a task: ``(image, targets) -> (image, y)``.

    ``kind``: "ssd" (``anchors=``, ``scales=``), "yolo" (``input_size=``, ``num_classes=``,
    ``strides=``), "pose" (``grid=``, ``num_keypoints=``) or "classify" (``num_classes=``; the
    pipeline's ``classify_crops`` element ``(crop, class_id)`` -> ``(crop, one_hot)``).
    ``y`` is a tuple with one target tensor per model output, in output order.
    """
    import tensorflow as tf

    if kind == "classify":
        nc = int(params["num_classes"])

        def encode_classify(image, label):
            return image, tf.one_hot(tf.cast(label, tf.int32), nc)

        return encode_classify
    if kind == "ssd":
        anchors = np.asarray(params["anchors"], np.float32)
        scales = tuple(params.get("scales", SSD_SCALES))
        na = anchors.shape[0]

        def np_ssd(boxes, ids):
            bt, ct = ssd_encode(boxes, ids, anchors, scales=scales)
            return bt, ct.astype(np.float32)[:, None]

        def encode_ssd(image, targets):
            bt, ct = tf.numpy_function(
                np_ssd, [targets["boxes"], targets["class_ids"]], [tf.float32, tf.float32]
            )
            return image, (tf.ensure_shape(bt, [na, 5]), tf.ensure_shape(ct, [na, 1]))

        return encode_ssd
    if kind == "yolo":
        size = tuple(int(v) for v in params["input_size"])
        nc = int(params["num_classes"])
        strides = tuple(params.get("strides", (8, 16, 32)))
        n = yolo_levels(size, strides)[0].shape[0]

        def np_yolo(boxes, ids):
            return yolo_encode(boxes, ids, size, nc, strides=strides)

        def encode_yolo(image, targets):
            bt, ct = tf.numpy_function(
                np_yolo, [targets["boxes"], targets["class_ids"]], [tf.float32, tf.float32]
            )
            return image, (tf.ensure_shape(bt, [n, 5]), tf.ensure_shape(ct, [n, nc]))

        return encode_yolo
    if kind == "pose":
        gh, gw = (int(v) for v in params["grid"])
        k = int(params["num_keypoints"])

        def np_pose(boxes, ids, kps):
            return pose_encode(boxes, ids, kps, (gh, gw))

        def encode_pose(image, targets):
            if "keypoints" not in targets:
                raise ValueError("pose training needs a dataset with keypoints")
            c, r, h, o = tf.numpy_function(
                np_pose,
                [targets["boxes"], targets["class_ids"], targets["keypoints"]],
                [tf.float32] * 4,
            )
            return image, (
                tf.ensure_shape(c, [gh, gw, 1]),
                tf.ensure_shape(r, [gh, gw, 3 * k]),
                tf.ensure_shape(h, [gh, gw, k]),
                tf.ensure_shape(o, [gh, gw, 3 * k]),
            )

        return encode_pose
    raise ValueError(f"unknown encoder kind {kind!r}; expected ssd, yolo, pose or classify")
