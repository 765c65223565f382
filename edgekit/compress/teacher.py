"""Teachers: a Keras model or any ``.tflite`` (through :class:`edgekit.runtime.model.Model`),
their outputs cached on disk, pseudo-labels for detection/pose, and frames sampled from video.

A teacher maps RGB uint8 images to one float array per image (``teacher.outputs(image)``):
class logits for classifiers (log-probabilities when the model ends in softmax), the raw
head outputs otherwise. :class:`TeacherCache` stores them as ``.npz`` files keyed by image path,
mtime, a variant tag (e.g. "flip") and the teacher's hash, so epochs never re-run the teacher.

When the teacher's label space differs from the student's (an ImageNet classifier teaching a
10-class student), :meth:`LinearProbe.fit` fits a softmax regression from the teacher's outputs
to the student's classes on the labelled images; the probe's logits are then the soft targets.

For detection and pose the teacher's *decoded* results (the runtime decoders) become labels:
:func:`pseudo_label` turns a :class:`~edgekit.data.Dataset` (or unlabelled images, or video
frames from :func:`edgekit.train.pseudo_label.frames_from_video`) into a dataset whose
boxes/keypoints come from the teacher, merged with the human labels where they exist
(:func:`edgekit.train.pseudo_label.merge_detections`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data.images import read_rgb
from edgekit.errors import DatasetError, UsageError
from edgekit.train.pseudo_label import merge_detections

__all__ = [
    "KerasTeacher",
    "LinearProbe",
    "TFLiteTeacher",
    "TeacherCache",
    "pseudo_label",
]


def _file_hash(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _log_probs(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p.astype(np.float32), 1e-6, 1.0))


class TFLiteTeacher:
    """Any ``.tflite`` model as a teacher: ``outputs(image)`` are its dequantized outputs
    (a classifier's probabilities become log-probabilities, i.e. logits up to a constant);
    ``predict(image)`` its decoded :class:`~edgekit.runtime.model.Prediction`."""

    def __init__(self, path: str | os.PathLike[str], *, threads: int | None = None, labels=None):
        from edgekit.runtime.model import Model

        self.path = Path(path)
        self.model = Model.load(self.path, threads=threads, labels=labels)
        self.spec = self.model.spec
        self.key = f"tflite-{_file_hash(self.path)[:16]}"

    def outputs(self, image: np.ndarray) -> np.ndarray:
        tensor, _ = self.model.preprocess(image)
        outs = self.model.dequantize(self.model.invoke(tensor))
        if self.spec.task == "classify":
            p = outs[0].reshape(-1)
            return _log_probs(p) if p.min() >= 0 and p.max() <= 1.0 + 1e-3 else p
        return np.concatenate([o.reshape(-1) for o in outs]).astype(np.float32)

    def predict(self, image: np.ndarray, **kwargs: Any) -> Any:
        return self.model.predict(image, **kwargs)


class KerasTeacher:
    """A Keras model as a teacher, fed the runtime preprocessing of ``spec``.

    For zoo classifiers the ``logits`` layer (before softmax) is used."""

    def __init__(self, model: Any, spec: Any, *, key: str | None = None):
        import keras

        from edgekit.export.representative import float_preprocessor

        self.spec = spec
        try:
            self.model = keras.Model(model.inputs, model.get_layer("logits").output)
        except ValueError:
            self.model = model
        self._prep = float_preprocessor(spec)
        if key is None:
            h = hashlib.sha1()
            for w in model.get_weights():
                h.update(np.ascontiguousarray(w).tobytes())
            key = f"keras-{h.hexdigest()[:16]}"
        self.key = key

    def outputs(self, image: np.ndarray) -> np.ndarray:
        tensor, _ = self._prep(image)
        out = self.model(tensor, training=False)
        out = out[0] if isinstance(out, (list, tuple)) else out
        return np.asarray(out, np.float32).reshape(-1)


class TeacherCache:
    """Teacher outputs on disk: ``root/<teacher key>/<sha1(path|mtime|variant)>.npz``."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def _file(self, teacher_key: str, image: Path, variant: str) -> Path:
        image = Path(image).resolve()
        try:
            mtime = image.stat().st_mtime_ns
        except OSError:
            raise DatasetError(f"{image}: image not found") from None
        key = hashlib.sha1(f"{image}|{mtime}|{variant}".encode()).hexdigest()
        return self.root / teacher_key / f"{key}.npz"

    def get(
        self,
        teacher: Any,
        image: str | os.PathLike[str],
        variant: str = "",
        load: Callable[[Path], np.ndarray] | None = None,
    ) -> np.ndarray:
        """The teacher's outputs for ``image`` (``variant`` "flip" = mirrored), cached."""
        f = self._file(teacher.key, Path(image), variant)
        if f.is_file():
            self.hits += 1
            with np.load(f) as z:
                return z["outputs"]
        self.misses += 1
        rgb = (load or read_rgb)(Path(image))
        if variant == "flip":
            rgb = np.ascontiguousarray(rgb[:, ::-1])
        out = np.asarray(teacher.outputs(rgb), np.float32)
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp.npz")
        np.savez(tmp, outputs=out)
        os.replace(tmp, f)
        return out

    def batch(
        self, teacher: Any, images: Sequence[str | os.PathLike[str]], variant: str = ""
    ) -> np.ndarray:
        """Stacked outputs for ``images`` (N, D)."""
        return np.stack([self.get(teacher, p, variant) for p in images])


@dataclass(frozen=True)
class LinearProbe:
    """Softmax regression from teacher outputs (D) to student classes (C): ``logits = x @ w + b``
    on standardized inputs. Maps a teacher with another label space onto the student's."""

    mean: np.ndarray
    std: np.ndarray
    w: np.ndarray
    b: np.ndarray

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        num_classes: int,
        *,
        l2: float = 1e-3,
        steps: int = 500,
        lr: float = 0.5,
    ) -> LinearProbe:
        """Full-batch gradient descent on cross-entropy + ``l2``; deterministic."""
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.int64).reshape(-1)
        if x.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise UsageError(f"probe needs (N, D) features and N labels, got {x.shape}, {y.shape}")
        mean, std = x.mean(0), x.std(0) + 1e-6
        z = (x - mean) / std
        n, d = z.shape
        w = np.zeros((d, num_classes))
        b = np.zeros(num_classes)
        onehot = np.eye(num_classes)[y]
        for _ in range(steps):
            logits = z @ w + b
            logits -= logits.max(1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(1, keepdims=True)
            g = (p - onehot) / n
            w -= lr * (z.T @ g + l2 * w)
            b -= lr * g.sum(0)
        return cls(
            mean.astype(np.float32),
            std.astype(np.float32),
            w.astype(np.float32),
            b.astype(np.float32),
        )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float32) - self.mean) / self.std) @ self.w + self.b

    @classmethod
    def cross_fit(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        num_classes: int,
        *,
        groups: Sequence[Any] | None = None,
        folds: int = 5,
        seed: int = 0,
        **kwargs: Any,
    ) -> np.ndarray:
        """Out-of-fold probe logits for the training rows themselves.

        A probe fitted on all rows memorizes them (its logits on its own training images are
        near one-hot, so they teach nothing beyond the labels); each row here is scored by a
        probe that never saw it. ``groups`` keeps rows of one image (e.g. its flipped copy) in
        the same fold.
        """
        x = np.asarray(x, np.float32)
        y = np.asarray(y, np.int64).reshape(-1)
        keys = list(range(len(y))) if groups is None else [str(g) for g in groups]
        uniq = sorted(set(keys))
        order = np.random.default_rng(seed).permutation(len(uniq))
        fold_of = {uniq[j]: int(i % folds) for i, j in enumerate(order)}
        fold = np.array([fold_of[k] for k in keys])
        out = np.zeros((len(y), num_classes), np.float32)
        for f in range(min(folds, len(uniq))):
            test = fold == f
            if test.all() or not test.any():
                continue
            out[test] = cls.fit(x[~test], y[~test], num_classes, **kwargs)(x[test])
        return out


# --- detection / pose pseudo-labels ----------------------------------------------------------


def pseudo_label(
    teacher: TFLiteTeacher,
    images: Any,
    class_names: Sequence[str],
    *,
    score_threshold: float = 0.5,
    class_map: Callable[[Any], int | None] | None = None,
    merge: bool = True,
    cache: TeacherCache | None = None,
) -> Any:
    """A :class:`~edgekit.data.Dataset` labelled by ``teacher`` (detector or pose model).

    ``images``: a Dataset (human labels merged unless ``merge`` is False) or image paths
    (unlabelled images, video frames). Detections are mapped to ``class_names`` by label
    name (or ``class_map(detection) -> id | None``); unmapped classes are dropped. Pose
    teachers give one person box (the keypoints' extent) with 17 keypoints (visibility 2
    above ``score_threshold``, else 0). Decoded results are cached as JSON next to the
    raw-output cache when ``cache`` is given.
    """
    from edgekit.data.dataset import Dataset, ImageRecord
    from edgekit.data.images import read_image_size

    task = teacher.spec.task
    if task not in ("detect", "pose"):
        raise UsageError(f"pseudo-labels need a detection or pose teacher, got a {task} model")
    names = [str(n) for n in class_names]
    lookup = {n.strip().lower(): i for i, n in enumerate(names)}

    def map_class(det: Any) -> int | None:
        if class_map is not None:
            return class_map(det)
        return lookup.get(str(det.label or "").strip().lower())

    if isinstance(images, Dataset):
        records = list(images.images)
    else:
        records = []
        for i, p in enumerate(images):
            w, h = read_image_size(p)
            records.append(
                ImageRecord(Path(p), w, h, np.zeros((0, 4)), np.zeros(0), image_id=i + 1)
            )
    out = []
    for rec in records:
        result = _decoded(teacher, rec.path, score_threshold, cache)
        if task == "detect":
            boxes, ids = [], []
            for box, label, score in result:
                det = _Det(np.asarray(box, np.float32), label, score)
                c = map_class(det)
                if c is not None and score >= score_threshold:
                    boxes.append(box)
                    ids.append(c)
            tb = np.asarray(boxes, np.float32).reshape(-1, 4)
            ti = np.asarray(ids, np.int64)
            if merge:
                tb, ti = merge_detections(rec.boxes, rec.class_ids, tb, ti)
            out.append(ImageRecord(rec.path, rec.width, rec.height, tb, ti, image_id=rec.image_id))
        else:
            kps, boxes = [], []
            for pose in result:
                k = np.asarray(pose, np.float32).reshape(-1, 3)
                vis = np.where(k[:, 2] >= score_threshold, 2.0, 0.0)
                if (vis > 0).sum() < 3:
                    continue
                xy = k[vis > 0, :2]
                boxes.append([*xy.min(0), *xy.max(0)])
                kps.append(np.concatenate([k[:, :2], vis[:, None]], axis=1))
            if merge and rec.keypoints is not None and rec.num_objects:
                out.append(rec)
                continue
            person = lookup.get("person", 0)
            out.append(
                ImageRecord(
                    rec.path,
                    rec.width,
                    rec.height,
                    np.asarray(boxes, np.float32).reshape(-1, 4),
                    np.full(len(boxes), person, np.int64),
                    keypoints=np.asarray(kps, np.float32).reshape(len(kps), -1, 3)
                    if kps
                    else np.zeros((0, 17, 3), np.float32),
                    image_id=rec.image_id,
                )
            )
    src = images.source_format if isinstance(images, Dataset) else "pseudo"
    return Dataset(tuple(out), tuple(names), source_format=src)


@dataclass(frozen=True)
class _Det:
    box: np.ndarray
    label: str
    score: float


def _decoded(teacher: TFLiteTeacher, path: Path, score: float, cache: TeacherCache | None) -> list:
    """Teacher's decoded results for one image: detections as (box, label, score), poses as
    (17, 3) x, y, score lists; cached as JSON when ``cache`` is given."""
    f = None
    if cache is not None:
        f = cache._file(teacher.key, path, f"decoded@{score:g}").with_suffix(".json")
        if f.is_file():
            cache.hits += 1
            return json.loads(f.read_text())
        cache.misses += 1
    pred = teacher.predict(read_rgb(path), score_threshold=score)
    if teacher.spec.task == "detect":
        result = [
            ([float(v) for v in d.box], d.label or "", float(d.score)) for d in pred.detections
        ]
    else:
        result = [[[k.x, k.y, k.score] for k in p.keypoints] for p in pred.poses]
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(result))
    return result
