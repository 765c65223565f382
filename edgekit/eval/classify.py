"""Classification metrics (top-1 / top-5 accuracy) over an image-folder dataset
(:func:`edgekit.data.images.read_image_folder`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.errors import DatasetError

__all__ = [
    "ClassifyMetrics",
    "evaluate_classes",
    "topk_accuracy",
]


@dataclass(frozen=True)
class ClassifyMetrics:
    """``metrics``: "top1", "top5"; ``per_class``: name -> {"top1", "images"}."""

    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]


def topk_accuracy(
    ranked: np.ndarray, truth: np.ndarray, ks: Sequence[int] = (1, 5)
) -> dict[str, float]:
    """Share of rows whose true class is among the first k predictions.

    ``ranked`` (N, M) predicted class ids, best first (-1 pads missing ones); ``truth`` (N,).
    A k larger than M counts the M available predictions.
    """
    r = np.asarray(ranked, dtype=np.int64)
    t = np.asarray(truth, dtype=np.int64).reshape(-1)
    if r.ndim != 2 or r.shape[0] != t.shape[0]:
        raise ValueError(f"ranked must be (N, M) with N = len(truth) = {t.shape[0]}, got {r.shape}")
    if t.shape[0] == 0:
        return {f"top{k}": float("nan") for k in ks}
    hits = r == t[:, None]
    return {f"top{k}": float(hits[:, :k].any(axis=1).mean()) for k in ks}


def evaluate_classes(
    dataset: Any,
    predictions: Sequence[Sequence[Any]],
    class_map: Callable[[Any], int | None],
    ks: Sequence[int] = (1, 5),
) -> ClassifyMetrics:
    """Top-k accuracy of ``predictions`` (one ranked list of ``Classification`` per image) against
    the class of each image's first object; images without objects are skipped."""
    width = max(max(ks), 1)
    rows, truth = [], []
    for rec, preds in zip(dataset.images, predictions, strict=True):
        if rec.num_objects == 0:
            continue
        ids = [class_map(p) for p in preds]
        ids = [-1 if i is None else int(i) for i in ids][:width]
        rows.append(ids + [-1] * (width - len(ids)))
        truth.append(int(rec.class_ids[0]))
    if not rows:
        raise DatasetError("no labelled images to evaluate a classifier on")
    ranked = np.array(rows, np.int64)
    t = np.array(truth, np.int64)
    metrics = topk_accuracy(ranked, t, ks)
    per_class = {}
    for c, name in enumerate(dataset.class_names):
        sel = t == c
        if sel.any():
            per_class[name] = {
                "top1": float((ranked[sel, 0] == c).mean()),
                "images": int(sel.sum()),
            }
    return ClassifyMetrics(metrics, per_class)
