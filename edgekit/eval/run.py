"""Run a model over a dataset and score it: the library side of ``edgekit eval``.

A ``.tflite`` file is loaded with :meth:`edgekit.runtime.model.Model.load` and decoded by exactly
the code ``edgekit detect`` runs. A Keras checkpoint (``.keras``; TensorFlow imported only
then) is run through the same ``Model`` (:mod:`edgekit.zoo.keras_runtime`) with its spec
(:mod:`edgekit.zoo.checkpoint`), so it gets the same preprocessing, decoding and mapping to the
frame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data.images import read_rgb
from edgekit.data.load import load_dataset
from edgekit.errors import DatasetError, DependencyMissing, ModelLoadError, UsageError

__all__ = [
    "EvalConfig",
    "EvalResult",
    "evaluate_model",
    "load_model",
    "predict_dataset",
]

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EvalConfig:
    """What ``edgekit eval`` evaluates and how.

    ``split``: "val"/"train" take that part of :func:`edgekit.data.split_dataset` with
    ``val_fraction`` and ``seed`` (the split training uses), "all" every image.
    ``class_map``: "auto" | "name" | "coco90to80" | "none" (see :class:`~edgekit.eval.detection.ClassMap`).
    ``max_detections``: detections kept per image (poses: 20, classes: 5 regardless).
    ``arch``/``labels`` only matter for Keras checkpoints (registry name, class names).
    """

    model: Path
    data: Path
    format: str = "auto"
    split: str = "val"
    val_fraction: float = 0.2
    seed: int = 0
    score_threshold: float = 0.001
    max_detections: int = 100
    max_images: int | None = None
    threads: int | None = None
    class_map: str = "auto"
    pck_alpha: float = 0.1
    arch: str | None = None
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvalResult:
    """Everything one evaluation produced. ``to_json`` gives the documented JSON object."""

    model: str
    data: str
    split: str
    images: int
    task: str
    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    backend: str = ""
    class_map: str = ""
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    recall: np.ndarray | None = None
    pr_curves: dict[str, np.ndarray] | None = None

    def to_json(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, float) and not np.isfinite(v):
                return None
            return v

        return {
            "model": self.model,
            "data": self.data,
            "split": self.split,
            "images": self.images,
            "task": self.task,
            "backend": self.backend,
            "class_map": self.class_map,
            "metrics": clean(self.metrics),
            "per_class": clean(self.per_class),
            "notes": list(self.notes),
            "seconds": round(self.seconds, 2),
        }


# --- models ------------------------------------------------------------------------------------


def load_keras(
    path: Path,
    *,
    arch: str | None = None,
    labels: Sequence[str] = (),
    dataset_names: Sequence[str] = (),
) -> Any:
    """A ``Model`` over a Keras checkpoint, decoded with its spec
    (:func:`edgekit.zoo.checkpoint.checkpoint_model_spec`: the ``<name>.spec.json`` next to it,
    else the zoo spec of its architecture, ``arch`` or told from its name). Labels: ``labels``,
    else the dataset's class names when their number matches the model's classes."""
    try:
        import keras  # noqa: F401
    except ImportError as exc:
        raise DependencyMissing(
            f"evaluating a Keras checkpoint needs TensorFlow/Keras ({exc})"
        ) from None
    from edgekit.zoo.checkpoint import checkpoint_model_spec, load_checkpoint_model
    from edgekit.zoo.keras_runtime import runtime_model

    km = load_checkpoint_model(path)
    if km.name.endswith("_raw"):
        raise UsageError(
            f"{path}: {km.name!r} is a raw training head without its decode layer",
            hint="evaluate the model built with decode=True, or its .tflite export",
        )
    spec = checkpoint_model_spec(path, km, arch=arch, labels=labels, dataset_names=dataset_names)
    return runtime_model(km, dataclasses.replace(spec, name=path.stem), path=path)


def load_model(
    path: Path | str,
    *,
    threads: int | None = None,
    arch: str | None = None,
    labels: Sequence[str] = (),
    dataset_names: Sequence[str] = (),
) -> Any:
    """A ``Model`` for a ``.tflite`` file or a ``.keras`` checkpoint."""
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"{p}: model file not found")
    if p.suffix.lower() in (".keras", ".h5"):
        return load_keras(p, arch=arch, labels=labels, dataset_names=dataset_names)
    from edgekit.runtime.model import Model

    return Model.load(p, threads=threads, labels=list(labels) if labels else None)


# --- data ------------------------------------------------------------------------------------


def check_task(task: str, dataset: Any, data: Path | str) -> None:
    """Refuse a model/dataset pair that cannot be evaluated together."""
    if task == "detect" and dataset.source_format == "folder":
        raise UsageError(
            f"{data}: an image-folder (classification) dataset cannot evaluate a detector"
        )
    if task == "pose" and not any(
        r.keypoints is not None and r.num_objects for r in dataset.images
    ):
        raise UsageError(f"{data}: a pose model needs keypoint annotations, this dataset has none")
    if task == "classify" and dataset.source_format != "folder":
        raise UsageError(
            f"{data}: a classifier needs an image-folder dataset (ROOT/<class name>/<image>), "
            f"not a {dataset.source_format or 'detection'} dataset"
        )
    if task == "detect" and dataset.num_boxes == 0:
        raise DatasetError(f"{data}: no boxes in the evaluated images")


def predict_dataset(
    model: Any,
    dataset: Any,
    *,
    score_threshold: float = 0.001,
    max_detections: int = 100,
    progress: Progress | None = None,
) -> list[Any]:
    """``model.predict`` on every image: a list of detections / poses / classifications per image."""
    task = model.spec.task
    limit = {"detect": max_detections, "pose": 20, "classify": 5}[task]
    out = []
    total = len(dataset.images)
    for i, rec in enumerate(dataset.images):
        score = 0.0 if task == "classify" else score_threshold
        pred = model.predict(read_rgb(rec.path), score_threshold=score, max_results=limit)
        out.append({"detect": pred.detections, "pose": pred.poses, "classify": pred.classes}[task])
        if progress is not None:
            progress(i + 1, total)
    return out


def _in_model_limit(model: Any) -> int | None:
    if model.spec.decoder != "ssd_postprocess":
        return None
    pos = model.spec.decoder_params.get("outputs", {}).get("boxes")
    if pos is None:
        return None
    return int(model.output_details[pos]["shape"][1])


def evaluate_model(
    config: EvalConfig,
    *,
    progress: Progress | None = None,
    on_start: Callable[[Any, Any], None] | None = None,
) -> EvalResult:
    """Load, predict over the dataset, score. ``on_start(model, dataset)`` runs before the
    images are processed (the CLI prints a header and starts its progress bar)."""
    import time

    from edgekit.eval.detection import ClassMap, evaluate_detections

    if not Path(config.model).is_file():
        raise ModelLoadError(f"{config.model}: model file not found")
    dataset = load_dataset(
        config.data,
        config.format,
        split=config.split,
        val_fraction=config.val_fraction,
        seed=config.seed,
        max_images=config.max_images,
    )
    model = load_model(
        config.model,
        threads=config.threads,
        arch=config.arch,
        labels=config.labels,
        dataset_names=dataset.class_names,
    )
    task = model.spec.task
    check_task(task, dataset, config.data)
    class_map = None
    if task in ("detect", "classify"):
        class_map = ClassMap.build(model.labels, dataset.class_names, config.class_map)
    if on_start is not None:
        on_start(model, dataset)
    t0 = time.perf_counter()
    preds = predict_dataset(
        model,
        dataset,
        score_threshold=config.score_threshold,
        max_detections=config.max_detections,
        progress=progress,
    )
    notes: list[str] = []
    recall = curves = None
    if task == "detect":
        det = evaluate_detections(dataset, preds, class_map)
        metrics, per_class, recall, curves = det.metrics, det.per_class, det.recall, det.pr_curves
        metrics["detections"] = float(det.num_detections)
        limit = _in_model_limit(model)
        if limit is not None:
            notes.append(
                f"NMS runs inside the model: at most {limit} detections per image, so recall "
                "(and mAP) is lower than with a full low-threshold list"
            )
    elif task == "pose":
        from edgekit.eval.pose import evaluate_poses

        pm = evaluate_poses(dataset, preds, alpha=config.pck_alpha)
        metrics, per_class = pm.metrics, pm.per_keypoint
        notes.append("OKS areas are ground-truth box areas (no segmentation areas)")
    else:
        from edgekit.eval.classify import evaluate_classes

        cm = evaluate_classes(dataset, preds, class_map)
        metrics, per_class = cm.metrics, cm.per_class
    return EvalResult(
        model=str(config.model),
        data=str(config.data),
        split=config.split
        if config.split == "all"
        else f"{config.split} ({config.val_fraction:g}, seed {config.seed})",
        images=len(dataset),
        task=task,
        metrics=metrics,
        per_class=per_class,
        backend=f"{model.backend.name} x{model.backend.threads}",
        class_map=class_map.mode if class_map is not None else "",
        notes=tuple(notes),
        seconds=time.perf_counter() - t0,
        recall=recall,
        pr_curves=curves,
    )
