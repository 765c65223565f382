"""Pose metrics: COCO keypoint AP (OKS, through faster-coco-eval) and PCK@alpha.

PCK counts a labelled keypoint as correct when it lies within ``alpha * max(box w, box h)``
pixels of the truth (the box is the person's ground-truth box). Each ground-truth person is
matched to the prediction in its image with the highest OKS; a person with no prediction
counts every labelled keypoint as wrong. Meant for single-person crops, fine for a few people.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.core.keypoints import COCO_SIGMAS, oks_matrix
from edgekit.core.types import Pose
from edgekit.errors import DatasetError
from edgekit.eval.detection import coco_api, coco_stat

__all__ = ["PoseMetrics", "coco_keypoint_results", "evaluate_poses", "pck_per_instance"]

_SUMMARY = (
    "AP",
    "AP50",
    "AP75",
    "AP_medium",
    "AP_large",
    "AR",
    "AR50",
    "AR75",
    "AR_medium",
    "AR_large",
)


@dataclass(frozen=True)
class PoseMetrics:
    """``metrics``: OKS AP/AR (COCO keypoint summary) and ``PCK@alpha``; ``per_keypoint``:
    keypoint name -> {"PCK": ..., "labelled": n}."""

    metrics: dict[str, float]
    per_keypoint: dict[str, dict[str, float]]
    num_poses: int


def pck_per_instance(
    pred_xy: np.ndarray,
    gt_xy: np.ndarray,
    visibility: np.ndarray,
    box_sizes: np.ndarray,
    alpha: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """Which labelled keypoints are correct.

    ``pred_xy``/``gt_xy`` (N, K, 2) pixels, ``visibility`` (N, K) (> 0 labelled), ``box_sizes``
    (N,) the reference size per instance (max of box width and height). Returns ``(correct,
    labelled)``, both (N, K) bool; PCK = ``correct.sum() / labelled.sum()``.
    """
    p = np.asarray(pred_xy, dtype=np.float64)
    g = np.asarray(gt_xy, dtype=np.float64)
    if p.shape != g.shape or p.ndim != 3 or p.shape[-1] != 2:
        raise ValueError(f"pred_xy and gt_xy must both be (N, K, 2), got {p.shape}, {g.shape}")
    labelled = np.asarray(visibility) > 0
    size = np.asarray(box_sizes, dtype=np.float64).reshape(-1)
    if labelled.shape != p.shape[:2] or size.shape[0] != p.shape[0]:
        raise ValueError(f"visibility must be {p.shape[:2]} and box_sizes ({p.shape[0]},)")
    dist = np.sqrt(((p - g) ** 2).sum(-1))
    correct = labelled & np.isfinite(dist) & (dist <= alpha * size[:, None])
    return correct, labelled


def _pose_xy(pose: Pose, width: int, height: int) -> np.ndarray:
    return np.array([(k.x * width, k.y * height) for k in pose.keypoints], dtype=np.float64)


def coco_keypoint_results(
    dataset: Any, predictions: Sequence[Sequence[Pose]], category_id: int
) -> list[dict[str, Any]]:
    """COCO keypoint result dicts (pixels; visibility = the keypoint's score)."""
    out = []
    for rec, poses in zip(dataset.images, predictions, strict=True):
        for pose in poses:
            xy = _pose_xy(pose, rec.width, rec.height)
            flat: list[float] = []
            for (x, y), k in zip(xy.tolist(), pose.keypoints, strict=True):
                flat += [x, y, float(k.score)]
            out.append(
                {
                    "image_id": int(rec.image_id),
                    "category_id": category_id,
                    "keypoints": flat,
                    "score": float(pose.score),
                }
            )
    return out


def _sigmas(k: int) -> np.ndarray:
    return np.asarray(COCO_SIGMAS, dtype=np.float64) if k == len(COCO_SIGMAS) else np.full(k, 0.05)


def evaluate_poses(
    dataset: Any,
    predictions: Sequence[Sequence[Pose]],
    *,
    alpha: float = 0.1,
) -> PoseMetrics:
    """OKS AP (COCO sigmas for 17 keypoints) and PCK@``alpha`` of ``predictions`` (one list of
    poses per dataset image) against the dataset's keypoints."""
    if len(predictions) != len(dataset.images):
        raise ValueError(f"{len(predictions)} predictions for {len(dataset.images)} images")
    if not any(r.keypoints is not None and r.num_objects for r in dataset.images):
        raise DatasetError(
            "the dataset has no keypoint annotations to evaluate a pose model against"
        )
    k = next(
        r.keypoints.shape[1] for r in dataset.images if r.keypoints is not None and r.num_objects
    )
    names = list(dataset.keypoint_names) or [f"kp{i}" for i in range(k)]
    sigmas = _sigmas(k)
    person = next((i for i, n in enumerate(dataset.class_names) if n.lower() == "person"), 0)
    metrics = _oks_ap(dataset, predictions, int(dataset.category_ids[person]), sigmas)
    correct_all, labelled_all = [], []
    for rec, poses in zip(dataset.images, predictions, strict=True):
        if rec.keypoints is None or rec.num_objects == 0:
            continue
        keep = ~np.asarray(rec.iscrowd, bool)
        scale = np.array([rec.width, rec.height], np.float64)
        gt = rec.keypoints[keep, :, :2].astype(np.float64) * scale
        vis = rec.keypoints[keep, :, 2]
        boxes = rec.boxes_pixels()[keep].astype(np.float64)
        size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        pred = np.full_like(gt, np.nan)
        if poses:
            pxy = np.stack([_pose_xy(p, rec.width, rec.height) for p in poses])
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            sim = oks_matrix(pxy, gt, vis, area, sigmas)  # (P, G)
            pred = pxy[np.argmax(sim, axis=0)]
        c, lab = pck_per_instance(pred, gt, vis, size, alpha)
        correct_all.append(c)
        labelled_all.append(lab)
    correct = np.concatenate(correct_all)
    labelled = np.concatenate(labelled_all)
    n_lab = int(labelled.sum())
    metrics[f"PCK@{alpha:g}"] = float(correct.sum() / n_lab) if n_lab else float("nan")
    per_kp = {}
    for j, name in enumerate(names):
        n = int(labelled[:, j].sum())
        per_kp[name] = {"PCK": float(correct[:, j].sum() / n) if n else float("nan"), "labelled": n}
    return PoseMetrics(metrics, per_kp, sum(len(p) for p in predictions))


def _oks_ap(
    dataset: Any, predictions: Sequence[Sequence[Pose]], category_id: int, sigmas: np.ndarray
) -> dict:
    from edgekit.data import to_coco_json

    COCO, COCOeval_faster = coco_api()

    results = coco_keypoint_results(dataset, predictions, category_id)
    if not results:
        return {key: 0.0 for key in _SUMMARY}
    gt_json = to_coco_json(dataset)
    gt = COCO(gt_json)
    dt = gt.loadRes(results)
    ev = COCOeval_faster(
        gt,
        dt,
        iouType="keypoints",
        kpt_oks_sigmas=list(map(float, sigmas)),
        print_function=lambda *a, **k: None,
    )
    ev.params.catIds = [category_id]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return {key: coco_stat(v) for key, v in zip(_SUMMARY, ev.stats[: len(_SUMMARY)], strict=False)}
