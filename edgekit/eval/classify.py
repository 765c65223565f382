"""Classification metrics (top-1 / top-5 accuracy) and the image-folder dataset they read.

An image-folder dataset is ``ROOT/<class name>/<image>``; it becomes an ordinary
:class:`edgekit.data.Dataset` with one whole-image box per image whose class is the folder, so
splitting and the rest of the evaluation treat it like any other dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import DatasetError

__all__ = [
    "ClassifyMetrics",
    "evaluate_classes",
    "is_image_folder",
    "read_image_folder",
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


def _class_folders(root: Path) -> list[Path]:
    from edgekit.data.dataset import IMAGE_SUFFIXES

    return sorted(
        d
        for d in root.iterdir()
        if d.is_dir()
        and any(p.suffix.lower() in IMAGE_SUFFIXES for p in d.iterdir() if p.is_file())
    )


def is_image_folder(path: Path | str) -> bool:
    """True for a folder whose subfolders hold images (and that has no ``images``/``labels``)."""
    p = Path(path)
    if not p.is_dir() or (p / "labels").is_dir() or (p / "Annotations").is_dir():
        return False
    return bool(_class_folders(p))


def read_image_folder(path: Path | str) -> Any:
    """Read ``ROOT/<class>/<image>`` into a Dataset (classes sorted by folder name)."""
    from edgekit.data.dataset import IMAGE_SUFFIXES, Dataset, ImageRecord, read_image_size

    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder of class subfolders")
    folders = _class_folders(root)
    if not folders:
        raise DatasetError(
            f"{root}: no class subfolders with images (expected ROOT/<class>/<image>)"
        )
    records = []
    for c, folder in enumerate(folders):
        for img in sorted(
            p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        ):
            w, h = read_image_size(img)
            records.append(
                ImageRecord(
                    img,
                    w,
                    h,
                    np.array([[0.0, 0.0, 1.0, 1.0]], np.float32),
                    np.array([c]),
                    image_id=len(records) + 1,
                )
            )
    return Dataset(
        tuple(records), tuple(d.name for d in folders), source_format="folder", root=root
    )
