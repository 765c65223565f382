"""COCO keypoint conventions and metrics (OKS, PCK). numpy only.

Keypoint order is :data:`edgekit.core.types.COCO_KEYPOINT_NAMES` (17 points, the order MoveNet,
PoseNet and COCO all use).
"""

from __future__ import annotations

import numpy as np

from edgekit.core.types import COCO_KEYPOINT_NAMES, Box

__all__ = [
    "COCO_FLIP_INDEX",
    "COCO_FLIP_PAIRS",
    "COCO_KEYPOINT_NAMES",
    "COCO_SIGMAS",
    "COCO_SKELETON",
    "flip_keypoints",
    "keypoints_box",
    "oks",
    "oks_matrix",
    "pck",
]

NUM_COCO_KEYPOINTS = len(COCO_KEYPOINT_NAMES)


def _index(name: str) -> int:
    return COCO_KEYPOINT_NAMES.index(name)


def _pairs() -> tuple[tuple[int, int], ...]:
    pairs = []
    for i, name in enumerate(COCO_KEYPOINT_NAMES):
        if name.startswith("left_"):
            pairs.append((i, _index("right_" + name[len("left_") :])))
    return tuple(pairs)


#: (left, right) index pairs swapped by a horizontal flip.
COCO_FLIP_PAIRS: tuple[tuple[int, int], ...] = _pairs()


def _flip_index() -> tuple[int, ...]:
    perm = list(range(NUM_COCO_KEYPOINTS))
    for a, b in COCO_FLIP_PAIRS:
        perm[a], perm[b] = b, a
    return tuple(perm)


#: ``flipped[i] = original[COCO_FLIP_INDEX[i]]`` after a horizontal flip.
COCO_FLIP_INDEX: tuple[int, ...] = _flip_index()

#: Edges (index pairs) to draw a COCO skeleton: limbs, torso and head.
COCO_SKELETON: tuple[tuple[int, int], ...] = tuple(
    (_index(a), _index(b))
    for a, b in (
        ("left_ankle", "left_knee"),
        ("left_knee", "left_hip"),
        ("right_ankle", "right_knee"),
        ("right_knee", "right_hip"),
        ("left_hip", "right_hip"),
        ("left_shoulder", "left_hip"),
        ("right_shoulder", "right_hip"),
        ("left_shoulder", "right_shoulder"),
        ("left_shoulder", "left_elbow"),
        ("right_shoulder", "right_elbow"),
        ("left_elbow", "left_wrist"),
        ("right_elbow", "right_wrist"),
        ("left_eye", "right_eye"),
        ("nose", "left_eye"),
        ("nose", "right_eye"),
        ("left_eye", "left_ear"),
        ("right_eye", "right_ear"),
        ("left_ear", "left_shoulder"),
        ("right_ear", "right_shoulder"),
    )
)

# fmt: off
#: Per-keypoint OKS falloff constants from the COCO evaluation (pycocotools).
COCO_SIGMAS: np.ndarray = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72,
     0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
) / 10.0
# fmt: on
COCO_SIGMAS.setflags(write=False)


def flip_keypoints(xy: np.ndarray, *, width: float = 1.0) -> np.ndarray:
    """Horizontally flip ``(..., 17, D)`` keypoints (x in column 0): mirror x, swap left/right.

    ``width`` is 1 for normalized coordinates, the image width for pixels (x -> width - x).
    Other columns (y, score, visibility) are only permuted.
    """
    p = np.array(xy, dtype=np.float64, copy=True)
    if p.ndim < 2 or p.shape[-2] != NUM_COCO_KEYPOINTS:
        raise ValueError(f"keypoints must have shape (..., {NUM_COCO_KEYPOINTS}, D), got {p.shape}")
    p = p[..., list(COCO_FLIP_INDEX), :]
    p[..., 0] = width - p[..., 0]
    return p


def oks_matrix(
    pred_xy: np.ndarray,
    gt_xy: np.ndarray,
    visibility: np.ndarray,
    areas: np.ndarray,
    sigmas: np.ndarray = COCO_SIGMAS,
) -> np.ndarray:
    """OKS of every prediction against every ground truth, as in pycocotools ``computeOks``.

    ``pred_xy`` (P, K, 2) and ``gt_xy`` (G, K, 2) in pixels, ``visibility`` (G, K) (> 0 = labelled),
    ``areas`` (G,) in square pixels. Returns (P, G); a ground truth with no labelled keypoint
    scores 0.
    """
    pred = np.asarray(pred_xy, dtype=np.float64)
    gt = np.asarray(gt_xy, dtype=np.float64)
    vis = np.asarray(visibility, dtype=np.float64)
    area = np.asarray(areas, dtype=np.float64).reshape(-1)
    sig = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if pred.ndim != 3 or pred.shape[-1] != 2 or gt.ndim != 3 or gt.shape[-1] != 2:
        raise ValueError(
            f"pred_xy and gt_xy must be (P, K, 2) and (G, K, 2), got {pred.shape}, {gt.shape}"
        )
    k = gt.shape[1]
    if (
        pred.shape[1] != k
        or sig.shape[0] != k
        or vis.shape != gt.shape[:2]
        or area.shape[0] != gt.shape[0]
    ):
        raise ValueError(
            f"inconsistent shapes: pred {pred.shape}, gt {gt.shape}, visibility {vis.shape}, "
            f"areas {area.shape}, sigmas {sig.shape}"
        )
    var = (2.0 * sig) ** 2
    d2 = ((pred[:, None] - gt[None]) ** 2).sum(-1)  # (P, G, K)
    e = d2 / var / (area[None, :, None] + np.spacing(1)) / 2.0
    labelled = vis > 0  # (G, K)
    n = labelled.sum(-1)  # (G,)
    total = (np.exp(-e) * labelled[None]).sum(-1)
    out = np.zeros((pred.shape[0], gt.shape[0]))
    np.divide(total, n[None, :], out=out, where=n[None, :] > 0)
    return out


def oks(
    pred_xy: np.ndarray,
    gt_xy: np.ndarray,
    visibility: np.ndarray,
    area: float,
    sigmas: np.ndarray = COCO_SIGMAS,
) -> float:
    """Object keypoint similarity of one pose (K, 2) against one ground truth (pixels)."""
    pred = np.asarray(pred_xy, dtype=np.float64)
    gt = np.asarray(gt_xy, dtype=np.float64)
    vis = np.asarray(visibility, dtype=np.float64).reshape(1, -1)
    return float(oks_matrix(pred[None], gt[None], vis, np.array([area]), sigmas)[0, 0])


def pck(
    pred: np.ndarray,
    gt: np.ndarray,
    threshold_px: float,
    visibility: np.ndarray | None = None,
) -> float:
    """Percentage of correct keypoints: share of labelled keypoints within ``threshold_px``.

    ``pred`` and ``gt`` are (..., K, 2) in pixels; ``visibility`` (..., K) > 0 marks labelled ones
    (all when None). Returns NaN when nothing is labelled.
    """
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.shape != g.shape or p.ndim < 2 or p.shape[-1] != 2:
        raise ValueError(
            f"pred and gt must have the same (..., K, 2) shape, got {p.shape}, {g.shape}"
        )
    dist = np.sqrt(((p - g) ** 2).sum(-1))
    vis = np.ones(dist.shape, bool) if visibility is None else np.asarray(visibility) > 0
    if vis.shape != dist.shape:
        raise ValueError(f"visibility must have shape {dist.shape}, got {vis.shape}")
    n = int(vis.sum())
    if n == 0:
        return float("nan")
    return float(((dist <= threshold_px) & vis).sum() / n)


def keypoints_box(xy: np.ndarray, scores: np.ndarray, min_score: float = 0.0) -> Box | None:
    """Bounding box (xyxy) of the keypoints scoring >= ``min_score``; None when there are none."""
    p = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.shape[0] != p.shape[0]:
        raise ValueError(f"{p.shape[0]} keypoints but {s.shape[0]} scores")
    ok = (s >= min_score) & np.isfinite(p).all(-1)
    if not ok.any():
        return None
    sel = p[ok]
    x0, y0 = sel.min(0)
    x1, y1 = sel.max(0)
    return (float(x0), float(y0), float(x1), float(y1))
