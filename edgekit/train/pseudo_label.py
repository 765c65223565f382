"""Datasets labelled by a teacher: detection pseudo-labels and person crops for pose distillation.

A teacher is any ``.tflite`` detector or pose model, run through :class:`edgekit.runtime.Model`
(so its decoding is exactly what ``edgekit detect|pose`` does). Two builders write YOLO-txt
datasets that ``edgekit train`` reads as they are:

- :func:`build_detection_dataset`: images (e.g. a dataset's TRAIN split) with their human labels
  plus frames sampled from videos, labelled by the teacher. Human labels win: on an image that
  has them, a teacher box is kept only when it overlaps no human box of the same class
  (:func:`merge_detections`); only the ``classes`` trained are kept, from
  either source.
- :func:`build_pose_dataset`: square crops around people (human or teacher boxes, enlarged),
  each labelled with the pose teacher's 17 keypoints (visibility 2 where its score reaches
  ``keypoint_threshold``, else 0), the person's box mapped into the crop.

numpy, OpenCV and the runtime only (no TensorFlow).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.types import COCO_KEYPOINT_NAMES
from edgekit.data.dataset import Dataset, ImageRecord, display_path
from edgekit.data.images import read_rgb
from edgekit.errors import DatasetError, SourceError, UsageError

__all__ = [
    "PersonCrop",
    "build_detection_dataset",
    "build_pose_dataset",
    "crop_square",
    "frames_from_video",
    "human_labels_for",
    "merge_detections",
    "person_crops",
    "reweight_dataset",
    "square_box",
    "teacher_boxes",
]


# --- helpers: frames from video, human and teacher boxes merged -----------------------------


def frames_from_video(
    path: str | os.PathLike[str],
    every_n: int,
    out_dir: str | os.PathLike[str],
    *,
    max_frames: int | None = None,
) -> list[Path]:
    """Write every ``every_n``-th frame of a video as JPEG into ``out_dir``; returns the paths.

    Existing frames are reused (same names), so calling it twice costs nothing."""
    import cv2

    if every_n < 1:
        raise UsageError(f"every_n must be >= 1, got {every_n}")
    src = Path(path)
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise SourceError(f"{src}: cannot open video")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    index = 0
    try:
        while max_frames is None or len(paths) < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            if index % every_n == 0:
                p = out / f"{src.stem}_{index:06d}.jpg"
                if not p.is_file() and not cv2.imwrite(str(p), frame):
                    raise SourceError(f"{p}: cannot write frame")
                paths.append(p)
            index += 1
    finally:
        cap.release()
    if not paths:
        raise SourceError(f"{src}: no frames read")
    return paths


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from edgekit.core.boxes import iou

    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    return iou(a, b)


def merge_detections(
    human_boxes: np.ndarray,
    human_ids: np.ndarray,
    teacher_boxes: np.ndarray,
    teacher_ids: np.ndarray,
    *,
    iou_threshold: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Human labels plus the teacher boxes that overlap no human box of the same class."""
    hb = np.asarray(human_boxes, np.float32).reshape(-1, 4)
    hi = np.asarray(human_ids, np.int64).reshape(-1)
    tb = np.asarray(teacher_boxes, np.float32).reshape(-1, 4)
    ti = np.asarray(teacher_ids, np.int64).reshape(-1)
    if len(tb) == 0:
        return hb, hi
    ious = _iou(tb, hb)
    same = ti[:, None] == hi[None, :]
    keep = ~((ious >= iou_threshold) & same).any(axis=1) if len(hb) else np.ones(len(tb), bool)
    return np.concatenate([hb, tb[keep]]), np.concatenate([hi, ti[keep]])


def _write_rgb(path: Path, image: np.ndarray, quality: int = 92) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() == ".jpg" else []
    if not cv2.imwrite(str(path), bgr, params):
        raise DatasetError(f"{path}: cannot write image")


def _load_teacher(teacher: Any, threads: int | None = None) -> Any:
    from edgekit.runtime.model import Model

    if isinstance(teacher, (str, os.PathLike)):
        return Model.load(Path(teacher), threads=threads)
    return teacher


# ------------------------------------------------------------------------------- detection
def teacher_boxes(
    model: Any, image_rgb: np.ndarray, classes: Sequence[str], score_threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The teacher's detections of ``classes`` (matched by label name, case-insensitive):
    ``(boxes (K,4) normalized xyxy, class ids (K,) into classes, scores (K,))``."""
    lookup = {str(c).strip().lower(): i for i, c in enumerate(classes)}
    pred = model.predict(image_rgb, score_threshold=score_threshold)
    boxes, ids, scores = [], [], []
    for d in pred.detections:
        c = lookup.get(str(d.label or "").strip().lower())
        if c is None or d.score < score_threshold:
            continue
        boxes.append([float(v) for v in d.box])
        ids.append(c)
        scores.append(float(d.score))
    return (
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(ids, np.int64),
        np.asarray(scores, np.float32),
    )


def human_labels_for(record: ImageRecord, source_names: Sequence[str], classes: Sequence[str]):
    """A record's human boxes of ``classes`` only, re-numbered into ``classes``."""
    lookup = {str(c).strip().lower(): i for i, c in enumerate(classes)}
    remap = np.array(
        [lookup.get(str(n).strip().lower(), -1) for n in source_names] or [-1], np.int64
    )
    ids = remap[record.class_ids] if record.num_objects else np.zeros(0, np.int64)
    keep = ids >= 0
    return record.boxes[keep], ids[keep]


def build_detection_dataset(
    out_dir: Path | str,
    teacher: Any,
    *,
    labelled: Dataset | None = None,
    images: Sequence[Path | str] = (),
    videos: Sequence[Path | str] = (),
    every_n: int = 3,
    max_frames: int | None = None,
    classes: Sequence[str] = ("person",),
    score_threshold: float = 0.5,
    iou_threshold: float = 0.5,
    repeat_labelled: int = 1,
    threads: int | None = None,
) -> Dataset:
    """Write a YOLO-txt dataset into ``out_dir`` (``images/``, ``labels/``, ``data.yaml``) and
    return it (its records point at the copies in ``out_dir/images``).

    ``labelled``: images with human labels (pass the TRAIN split only); ``images``: unlabelled
    images; ``videos``: every ``every_n``-th frame (at most ``max_frames`` per video). The
    teacher labels all of them; human labels win (module docstring). Classes not in ``classes``
    are dropped from both sources. ``repeat_labelled``: each labelled image appears that many
    times (copies named ``labelled_rK_...``), to weigh them against many video frames.
    """
    from edgekit.data.yolo_txt import write_yolo

    if not classes:
        raise UsageError("build_detection_dataset: give at least one class to keep")
    if repeat_labelled < 1:
        raise UsageError(f"repeat_labelled must be >= 1, got {repeat_labelled}")
    out = Path(out_dir)
    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    model = _load_teacher(teacher, threads)
    records: list[ImageRecord] = []

    def add(path: Path, rgb: np.ndarray, names: list[str], human: ImageRecord | None) -> None:
        tb, ti, _ = teacher_boxes(model, rgb, classes, score_threshold)
        if human is not None and labelled is not None:
            hb, hi = human_labels_for(human, labelled.class_names, classes)
            tb, ti = merge_detections(hb, hi, tb, ti, iou_threshold=iou_threshold)
        h, w = rgb.shape[:2]
        for name in names:
            target = img_dir / name
            if path.suffix.lower() in (".jpg", ".jpeg"):
                if not target.is_file():
                    import shutil

                    shutil.copyfile(path, target)
            else:
                target = target.with_suffix(".jpg")
                _write_rgb(target, rgb)
            records.append(ImageRecord(target, w, h, tb, ti, image_id=len(records) + 1))

    if labelled is not None:
        for rec in labelled.images:
            rel = display_path(rec.path, labelled.root) if labelled.root else rec.path.name
            rel = rel.replace("/", "_").removeprefix("images_")
            names = [f"labelled_{rel}"]
            names += [f"labelled_r{k}_{rel}" for k in range(1, repeat_labelled)]
            add(rec.path, read_rgb(rec.path), names, rec)
    for p in images:
        p = Path(p)
        add(p, read_rgb(p), [f"unlabelled_{p.name}"], None)
    frame_dir = out / "frames"
    for v in videos:
        for f in frames_from_video(v, every_n, frame_dir, max_frames=max_frames):
            add(f, read_rgb(f), [f"video_{f.name}"], None)
    if not records:
        raise UsageError("build_detection_dataset: no images given")
    ds = Dataset(tuple(records), tuple(classes), source_format="yolo", root=out)
    write_yolo(ds, out, images="none")
    return ds


# ------------------------------------------------------------------------------------ pose
@dataclass(frozen=True)
class PersonCrop:
    """One person to crop: the image, the person's box (normalized xyxy of that image) and
    whether the box is a human label (else the detector teacher's)."""

    path: Path
    box: np.ndarray
    human: bool


def square_box(box: np.ndarray, width: int, height: int, enlarge: float = 1.3) -> np.ndarray:
    """A square pixel box ``(x0, y0, x1, y1)`` centred on ``box`` (normalized xyxy), its side
    ``enlarge`` × the longer side of the box in pixels (it may leave the image)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, bh = (x1 - x0) * width, (y1 - y0) * height
    cx, cy = (x0 + x1) / 2 * width, (y0 + y1) / 2 * height
    side = max(bw, bh, 1.0) * enlarge
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float64)


def crop_square(image: np.ndarray, square: np.ndarray, size: int) -> np.ndarray:
    """The pixel square ``square`` of ``image`` resized to ``size`` x ``size`` (black where the
    square leaves the image)."""
    import cv2

    x0, y0, x1, _ = (float(v) for v in square)
    s = size / max(x1 - x0, 1e-6)
    m = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], np.float32)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(
        image, m, (size, size), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def person_crops(
    dataset: Dataset,
    *,
    person_class: str = "person",
    min_size_px: float = 48.0,
    human: bool = True,
) -> list[PersonCrop]:
    """The people of ``dataset`` whose box is at least ``min_size_px`` tall or wide (pixels);
    ``human`` records whether the dataset's boxes are human labels."""
    names = [str(n).strip().lower() for n in dataset.class_names]
    if person_class not in names:
        raise DatasetError(f"dataset has no {person_class!r} class: {dataset.class_names}")
    pid = names.index(person_class)
    out = []
    for rec in dataset.images:
        for box, c, crowd in zip(rec.boxes, rec.class_ids, rec.iscrowd, strict=True):
            if c != pid or crowd:
                continue
            side = max((box[2] - box[0]) * rec.width, (box[3] - box[1]) * rec.height)
            if side >= min_size_px:
                out.append(PersonCrop(rec.path, np.asarray(box, np.float32), human))
    return out


def build_pose_dataset(
    out_dir: Path | str,
    teacher: Any,
    crops: Sequence[PersonCrop],
    *,
    size: int = 192,
    enlarge: float = 1.3,
    keypoint_threshold: float = 0.3,
    min_keypoints: int = 5,
    image_format: str = "jpg",
    threads: int | None = None,
) -> Dataset:
    """Write square person crops (``size`` px) labelled by the pose ``teacher`` as a YOLO-pose
    dataset (``kpt_shape [17, 3]``, one ``person`` per crop) into ``out_dir``; returns it.

    The teacher runs on the crop itself. Keypoints scoring below ``keypoint_threshold`` are
    unlabelled (visibility 0); crops with fewer than ``min_keypoints`` labelled are skipped.
    The box of each crop is the source person box mapped into the crop. ``image_format``
    "png" keeps the crops lossless (so the teacher, re-run on them, reproduces its labels).
    """
    if image_format not in ("jpg", "png"):
        raise UsageError(f"image_format must be jpg or png, got {image_format!r}")
    from edgekit.data.yolo_txt import write_yolo

    out = Path(out_dir)
    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    model = _load_teacher(teacher, threads)
    if model.spec.task != "pose":
        raise UsageError(f"{model.path}: is a {model.spec.task} model, not a pose teacher")
    records: list[ImageRecord] = []
    cache: dict[Path, np.ndarray] = {}
    for crop in crops:
        if crop.path not in cache:
            cache.clear()
            cache[crop.path] = read_rgb(crop.path)
        rgb = cache[crop.path]
        h, w = rgb.shape[:2]
        sq = square_box(crop.box, w, h, enlarge)
        patch = crop_square(rgb, sq, size)
        pred = model.predict(patch, score_threshold=0.0)
        if not pred.poses:
            continue
        kp = np.array([[k.x, k.y, k.score] for k in pred.poses[0].keypoints], np.float32)
        vis = np.where(kp[:, 2] >= keypoint_threshold, 2.0, 0.0).astype(np.float32)
        if int((vis > 0).sum()) < min_keypoints:
            continue
        side = sq[2] - sq[0]
        bx = np.array(
            [
                (crop.box[0] * w - sq[0]) / side,
                (crop.box[1] * h - sq[1]) / side,
                (crop.box[2] * w - sq[0]) / side,
                (crop.box[3] * h - sq[1]) / side,
            ],
            np.float32,
        ).clip(0.0, 1.0)
        kps = np.concatenate([kp[:, :2].clip(0.0, 1.0), vis[:, None]], axis=1)
        name = f"{len(records):05d}_{'h' if crop.human else 't'}_{crop.path.stem}.{image_format}"
        target = img_dir / name
        _write_rgb(target, patch)
        records.append(
            ImageRecord(
                target,
                size,
                size,
                bx[None],
                np.zeros(1, np.int64),
                keypoints=kps[None],
                image_id=len(records) + 1,
            )
        )
    if not records:
        raise UsageError("build_pose_dataset: no crop kept (no people, or the teacher saw none)")
    ds = Dataset(
        tuple(records),
        ("person",),
        keypoint_names=COCO_KEYPOINT_NAMES,
        source_format="yolo",
        root=out,
    )
    write_yolo(ds, out, images="none")
    return ds


def reweight_dataset(
    dataset: Dataset, out_dir: Path | str, copies: Callable[[ImageRecord], int]
) -> Dataset:
    """Write ``dataset`` into ``out_dir`` with each image present ``copies(record)`` times
    (0 drops it; copies are hard links or files named ``rK_<name>``), e.g. to weigh a few
    labelled photos against many video frames. Returns the new dataset (YOLO txt)."""
    import shutil

    from edgekit.data.yolo_txt import write_yolo

    out = Path(out_dir)
    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    records: list[ImageRecord] = []
    for rec in dataset.images:
        n = int(copies(rec))
        if n < 0:
            raise UsageError(f"copies() must be >= 0, got {n} for {rec.path}")
        for k in range(n):
            target = img_dir / (rec.path.name if k == 0 else f"r{k}_{rec.path.name}")
            if not target.exists():
                try:
                    os.link(rec.path, target)
                except OSError:
                    shutil.copyfile(rec.path, target)
            records.append(
                ImageRecord(
                    target,
                    rec.width,
                    rec.height,
                    rec.boxes,
                    rec.class_ids,
                    keypoints=rec.keypoints,
                    iscrowd=rec.iscrowd,
                    image_id=len(records) + 1,
                )
            )
    if not records:
        raise UsageError("reweight_dataset: every image got 0 copies")
    ds = Dataset(
        tuple(records),
        dataset.class_names,
        keypoint_names=dataset.keypoint_names,
        source_format="yolo",
        root=out,
        category_ids=dataset.category_ids,
    )
    write_yolo(ds, out, images="none")
    return ds
