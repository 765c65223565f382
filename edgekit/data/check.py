"""Validate a dataset and summarise it (what ``edgekit data check`` prints).

Reads with every problem collected (not stopping at the first), then decodes every image to check
it opens and has the size the annotations say, and looks for degenerate, tiny and duplicate
boxes and duplicate image files. numpy and PIL (else OpenCV); no TensorFlow.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data.dataset import Dataset, ImageRecord, Problem, Problems, display_path
from edgekit.data.images import image_size
from edgekit.data.load import read_dataset

__all__ = ["CheckReport", "check_dataset"]


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check_dataset` found. ``ok`` is False when there is any error."""

    path: str
    format: str
    num_images: int
    num_boxes: int
    class_names: tuple[str, ...]
    class_counts: tuple[int, ...]
    empty_images: int
    problems: tuple[Problem, ...] = field(default=())

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def count(self, code: str) -> int:
        """Number of problems with this ``code`` (e.g. "missing_label", "small")."""
        return sum(p.code == code for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        codes: dict[str, int] = {}
        for p in self.problems:
            codes[p.code] = codes.get(p.code, 0) + 1
        return {
            "path": self.path,
            "format": self.format,
            "ok": self.ok,
            "images": self.num_images,
            "boxes": self.num_boxes,
            "empty_images": self.empty_images,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "problem_counts": codes,
            "classes": [
                {"id": i, "name": n, "boxes": c}
                for i, (n, c) in enumerate(zip(self.class_names, self.class_counts, strict=True))
            ],
            "problems": [p.to_dict() for p in self.problems],
        }


def _decode_one(record: ImageRecord) -> tuple[str | None, tuple[int, int] | None, str]:
    try:
        data = record.path.read_bytes()
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})", None, ""
    digest = hashlib.sha1(data).hexdigest()
    try:
        size = image_size(record.path, decode=True)
    except ValueError as exc:
        return f"cannot decode image ({exc})", None, digest
    return None, size, digest


def _pairwise_iou(b: np.ndarray) -> np.ndarray:
    x0 = np.maximum(b[:, None, 0], b[None, :, 0])
    y0 = np.maximum(b[:, None, 1], b[None, :, 1])
    x1 = np.minimum(b[:, None, 2], b[None, :, 2])
    y1 = np.minimum(b[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area[:, None] + area[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _check_boxes(
    dataset: Dataset, problems: Problems, min_box_px: float, duplicate_iou: float
) -> None:
    for r in dataset.images:
        if r.num_objects == 0:
            continue
        name = display_path(r.path, dataset.root)
        px = r.boxes_pixels().astype(np.float64)
        w, h = px[:, 2] - px[:, 0], px[:, 3] - px[:, 1]
        for k in range(r.num_objects):
            where = f"box {k + 1} ({dataset.class_names[r.class_ids[k]]})"
            if w[k] <= 0 or h[k] <= 0:
                problems.warn(
                    name,
                    where,
                    f"degenerate box {w[k]:.1f}x{h[k]:.1f} px (zero area)",
                    "degenerate",
                )
            elif w[k] < min_box_px or h[k] < min_box_px:
                problems.warn(
                    name, where, f"tiny box {w[k]:.1f}x{h[k]:.1f} px (< {min_box_px:g} px)", "small"
                )
        iou = _pairwise_iou(px)
        same = r.class_ids[:, None] == r.class_ids[None, :]
        dup = np.argwhere(np.triu((iou >= duplicate_iou) & same, k=1))
        for i, j in dup:
            problems.warn(
                name,
                f"box {j + 1}",
                f"duplicate of box {i + 1} (same class, IoU {iou[i, j]:.2f})",
                "duplicate",
            )


def check_dataset(
    path: Path | str,
    format: str = "auto",
    *,
    split: str | None = None,
    names: Sequence[str] | None = None,
    decode_images: bool = True,
    min_box_px: float = 2.0,
    duplicate_iou: float = 0.95,
    workers: int = 4,
) -> CheckReport:
    """Read ``path`` collecting all problems, then check images and boxes.

    Errors (the dataset cannot be trusted): malformed annotations, missing or undecodable images,
    image sizes differing from the annotations. Warnings: missing label files, degenerate boxes
    (zero area), tiny boxes (< ``min_box_px`` pixels on a side), duplicate boxes (same class,
    IoU >= ``duplicate_iou``), duplicate image files. Fatal layout errors (no images, no class
    names, unparsable yaml/JSON) raise :class:`~edgekit.errors.DatasetError`.
    """
    problems = Problems(strict=False)
    dataset = read_dataset(path, format, problems=problems, split=split, names=names)
    broken: set[int] = set()
    if decode_images and dataset.images:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            results = list(pool.map(_decode_one, dataset.images))
        seen: dict[str, str] = {}
        for i, (r, (err, size, digest)) in enumerate(zip(dataset.images, results, strict=True)):
            name = display_path(r.path, dataset.root)
            if err is not None:
                problems.error(name, "", err, "unreadable_image")
                broken.add(i)
            elif size != (r.width, r.height):
                problems.error(
                    name,
                    "",
                    f"image is {size[0]}x{size[1]} but the annotations say {r.width}x{r.height}",
                    "size_mismatch",
                )
            if digest:
                if digest in seen:
                    problems.warn(
                        name,
                        "",
                        f"same bytes as {seen[digest]} (duplicate image)",
                        "duplicate_image",
                    )
                else:
                    seen[digest] = name
    _check_boxes(dataset, problems, min_box_px, duplicate_iou)
    return CheckReport(
        path=str(path),
        format=dataset.source_format,
        num_images=len(dataset),
        num_boxes=dataset.num_boxes,
        class_names=dataset.class_names,
        class_counts=tuple(int(c) for c in dataset.class_counts()),
        empty_images=sum(r.num_objects == 0 for r in dataset.images),
        problems=tuple(problems.items),
    )
