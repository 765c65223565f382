"""The one in-memory dataset representation, and how problems in the files are reported.

numpy and the standard library only (no TensorFlow): the readers are also used by ``eval`` on the
device side. Coordinates are normalized ``xyxy`` in ``[0, 1]`` of the image; each reader converts
from its file format at the edge, and the writers convert back.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgekit.core.types import COCO80_CATEGORY_IDS, COCO80_NAMES
from edgekit.errors import DatasetError

__all__ = [
    "Dataset",
    "ImageRecord",
    "Problem",
    "Problems",
    "display_path",
    "empty_record",
    "stable_image_ids",
]


# --------------------------------------------------------------------------------------------
# Problems: errors (malformed input) and warnings (suspicious but readable)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a dataset: which file, where in it, and what.

    ``where`` is "line 3", a JSON field path ("annotations[12].bbox"), an XML element, or "".
    ``code`` is a short machine tag ("syntax", "range", "missing_image", "missing_label",
    "unreadable_image", "size_mismatch", "degenerate", "small", "duplicate", ...).
    """

    file: str
    where: str
    message: str
    severity: str = "error"
    code: str = "invalid"

    def __str__(self) -> str:
        if not self.where:
            return f"{self.file}: {self.message}"
        sep = " " if self.where.startswith("line ") else ": "
        return f"{self.file}{sep}{self.where}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {
            "file": self.file,
            "where": self.where,
            "message": self.message,
            "severity": self.severity,
            "code": self.code,
            "text": str(self),
        }


class Problems:
    """Collects problems while reading. ``strict``: the first error raises :class:`DatasetError`;
    otherwise every error is kept and reading goes on (what ``edgekit data check`` uses).
    Warnings never raise."""

    def __init__(self, *, strict: bool = True) -> None:
        self.strict = strict
        self.items: list[Problem] = []

    def error(self, file: str, where: str, message: str, code: str = "invalid") -> None:
        problem = Problem(file, where, message, "error", code)
        if self.strict:
            raise DatasetError(str(problem))
        self.items.append(problem)

    def warn(self, file: str, where: str, message: str, code: str = "warning") -> None:
        self.items.append(Problem(file, where, message, "warning", code))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "warning"]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)


def display_path(path: Path | str, root: Path | str | None) -> str:
    """``path`` relative to ``root`` with forward slashes (as problems name files)."""
    p = Path(path)
    if root is not None:
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            try:
                return Path(os.path.relpath(p, root)).as_posix()
            except ValueError:
                pass
    return p.as_posix()


# --------------------------------------------------------------------------------------------
# The records
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ImageRecord:
    """One image and its objects.

    - ``boxes``: (K, 4) float32 normalized ``x0, y0, x1, y1`` of this image.
    - ``class_ids``: (K,) int64, 0-based index into ``Dataset.class_names``.
    - ``keypoints``: (K, P, 3) float32 normalized ``x, y`` and visibility (0 unlabelled,
      1 labelled but occluded, 2 visible, as in COCO), or None for datasets without keypoints.
    - ``iscrowd``: (K,) bool, objects evaluation ignores (COCO ``iscrowd``, VOC ``difficult``).
    - ``image_id``: the id in the source (COCO image id), else a stable index.
    """

    path: Path
    width: int
    height: int
    boxes: np.ndarray
    class_ids: np.ndarray
    keypoints: np.ndarray | None = None
    iscrowd: np.ndarray | None = None
    image_id: int = 0

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        k = boxes.shape[0]
        if ids.shape[0] != k:
            raise DatasetError(f"{self.path}: {k} boxes but {ids.shape[0]} class ids")
        crowd = (
            np.zeros(k, bool)
            if self.iscrowd is None
            else np.asarray(self.iscrowd, bool).reshape(-1)
        )
        if crowd.shape[0] != k:
            raise DatasetError(f"{self.path}: {k} boxes but {crowd.shape[0]} iscrowd flags")
        kps = self.keypoints
        if kps is not None:
            kps = np.asarray(kps, dtype=np.float32)
            if kps.ndim != 3 or kps.shape[0] != k or kps.shape[2] != 3:
                raise DatasetError(f"{self.path}: keypoints must be ({k}, P, 3), got {kps.shape}")
        if self.width <= 0 or self.height <= 0:
            raise DatasetError(
                f"{self.path}: image size {self.width}x{self.height} is not positive"
            )
        for name, arr in (
            ("boxes", boxes),
            ("class_ids", ids),
            ("iscrowd", crowd),
            ("keypoints", kps),
        ):
            if arr is not None:
                arr.setflags(write=False)
                object.__setattr__(self, name, arr)
        object.__setattr__(self, "path", Path(self.path))

    @property
    def num_objects(self) -> int:
        return int(self.boxes.shape[0])

    def boxes_pixels(self) -> np.ndarray:
        """(K, 4) pixel xyxy of this image."""
        scale = np.array([self.width, self.height, self.width, self.height], np.float32)
        return self.boxes * scale


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images, their objects and the class list. ``category_ids[c]`` is the original id of class
    ``c`` (COCO category ids; the standard 1..90 ids when the classes are the 80 COCO ones;
    otherwise ``c + 1``), used when writing COCO-format ground truth for evaluation."""

    images: tuple[ImageRecord, ...]
    class_names: tuple[str, ...]
    keypoint_names: tuple[str, ...] = ()
    source_format: str = ""
    root: Path | None = None
    category_ids: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "images", tuple(self.images))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "keypoint_names", tuple(self.keypoint_names))
        if not self.category_ids:
            if self.class_names == COCO80_NAMES:
                ids = COCO80_CATEGORY_IDS
            else:
                ids = tuple(range(1, len(self.class_names) + 1))
            object.__setattr__(self, "category_ids", ids)
        if len(self.category_ids) != len(self.class_names):
            raise DatasetError(
                f"{len(self.class_names)} class names but {len(self.category_ids)} category ids"
            )
        if self.root is not None:
            object.__setattr__(self, "root", Path(self.root))

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self):
        return iter(self.images)

    def __getitem__(self, index: int) -> ImageRecord:
        return self.images[index]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_boxes(self) -> int:
        return sum(r.num_objects for r in self.images)

    def class_counts(self) -> np.ndarray:
        """(C,) number of boxes of each class."""
        counts = np.zeros(self.num_classes, np.int64)
        for r in self.images:
            np.add.at(counts, r.class_ids, 1)
        return counts

    def subset(self, indices: Iterable[int]) -> Dataset:
        """A dataset with only the images at ``indices`` (same classes)."""
        return replace(self, images=tuple(self.images[i] for i in indices))


# --------------------------------------------------------------------------------------------
# Helpers shared by the readers
# --------------------------------------------------------------------------------------------
def empty_record(
    path: Path, width: int, height: int, image_id: int, num_keypoints: int | None
) -> ImageRecord:
    kps = None if num_keypoints is None else np.zeros((0, num_keypoints, 3), np.float32)
    return ImageRecord(
        path,
        width,
        height,
        np.zeros((0, 4), np.float32),
        np.zeros(0, np.int64),
        kps,
        None,
        image_id,
    )


def stable_image_ids(paths: Sequence[Path]) -> list[int]:
    """Numeric file stems as ids when they are all numeric and distinct (COCO-style names),
    else 1-based positions."""
    stems = [p.stem for p in paths]
    if stems and all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems):
        return [int(s) for s in stems]
    return list(range(1, len(paths) + 1))
