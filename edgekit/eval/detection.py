"""Detection metrics: COCO mAP@[.5:.95], AP50, AP75 and per-class AP through faster-coco-eval.

Ground truth comes from the dataset (:func:`edgekit.data.to_coco_json`: pixels, ``xywh``, area,
iscrowd, original category ids); detections are mapped from the model's classes to the dataset's
(:class:`ClassMap`, by label name by default) and written in pixels. No hand-written mAP here:
the numbers are the library's, read from its ``precision`` array ``[T, R, K, A, M]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.core.types import COCO80_CATEGORY_IDS, Detection
from edgekit.errors import DependencyMissing, UsageError

__all__ = [
    "CLASS_MAP_MODES",
    "COCO90_TO_80",
    "ClassMap",
    "DetectionMetrics",
    "coco_api",
    "coco_detections",
    "coco_stat",
    "evaluate_detections",
    "normalize_label",
]

CLASS_MAP_MODES = ("auto", "name", "coco90to80", "none")

#: Output class index of a 90-id COCO model (TF Object Detection API: ``category_id - 1``, so
#: 0 = person, 89 = toothbrush) -> 0-based index of the 80 contiguous classes. The 10 unused ids
#: (12, 26, 29, 30, 45, 66, 68, 69, 71, 83) are absent.
COCO90_TO_80: dict[int, int] = {cat - 1: i for i, cat in enumerate(COCO80_CATEGORY_IDS)}

# Names that differ between label sets for the same class (VOC, older COCO label maps).
_ALIASES = {
    "motorbike": "motorcycle",
    "aeroplane": "airplane",
    "tvmonitor": "tv",
    "tv monitor": "tv",
    "sofa": "couch",
    "diningtable": "dining table",
    "pottedplant": "potted plant",
    "hair dryer": "hair drier",
}


def normalize_label(name: str) -> str:
    """Case-, separator- and alias-insensitive form of a class name ("Potted_Plant" -> "potted plant")."""
    key = " ".join(str(name).strip().lower().replace("_", " ").replace("-", " ").split())
    return _ALIASES.get(key, key)


@dataclass(frozen=True)
class ClassMap:
    """Maps a model's detections to dataset class indices (``None``: not a dataset class, dropped).

    - ``by_name``: normalized label -> dataset index (a detection's ``label`` as the runtime set it,
      so the model's own label offset is already applied).
    - ``by_id``: model class id -> dataset index (the coco90to80 table, or the identity).
    With both, the name wins and the id table covers detections whose label is empty or unknown.
    """

    mode: str
    by_name: Mapping[str, int] = field(default_factory=dict)
    by_id: Mapping[int, int] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        model_labels: Sequence[str],
        dataset_names: Sequence[str],
        mode: str = "auto",
    ) -> ClassMap:
        """Choose the mapping.

        ``auto``: by name when the model has labels that name at least one dataset class, with
        the coco90to80 table as fallback when the dataset is the 80 COCO classes and the model
        has more than 80; else the identity when the model has no labels. ``name``: by name only.
        ``coco90to80``: the table only. ``none``: class id = dataset index.
        """
        if mode not in CLASS_MAP_MODES:
            raise UsageError(
                f"unknown class map {mode!r}; expected one of {', '.join(CLASS_MAP_MODES)}"
            )
        n = len(dataset_names)
        identity = {i: i for i in range(n)}
        if mode == "none":
            return cls("none", by_id=identity)
        if mode == "coco90to80":
            if n != 80:
                raise UsageError(
                    f"class map coco90to80 needs a dataset of the 80 COCO classes, this one has {n}"
                )
            return cls("coco90to80", by_id=dict(COCO90_TO_80))
        names = {normalize_label(name): i for i, name in enumerate(dataset_names)}
        useful = [lab for lab in model_labels if normalize_label(lab) in names]
        if mode == "name":
            if not useful:
                raise UsageError("class map 'name': no model label matches a dataset class name")
            return cls("name", by_name=names)
        if useful:
            coco_like = n == 80 and len(model_labels) > 80
            return cls("name", by_name=names, by_id=dict(COCO90_TO_80) if coco_like else {})
        if model_labels and len(model_labels) != n:
            raise UsageError(
                f"no model label matches a dataset class name and the model has {len(model_labels)} "
                f"classes, the dataset {n}",
                hint="pass --class-map none or coco90to80 to map by class id",
            )
        return cls("none", by_id=identity)

    def __call__(self, det: Detection) -> int | None:
        if self.by_name and det.label:
            hit = self.by_name.get(normalize_label(det.label))
            if hit is not None:
                return hit
            if normalize_label(det.label) not in ("", "???"):
                return None  # a named class the dataset does not have
        return self.by_id.get(int(det.class_id))


@dataclass(frozen=True)
class DetectionMetrics:
    """COCO box metrics. ``per_class``: name -> {"AP", "AP50", "gt"} for classes with ground
    truth; ``pr_curves``: name -> precision at ``recall`` (IoU 0.5, all areas, 100 detections),
    plus "all" (mean over classes with ground truth)."""

    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    recall: np.ndarray
    pr_curves: dict[str, np.ndarray]
    num_detections: int


def coco_detections(
    dataset: Any, predictions: Sequence[Sequence[Detection]], class_map: ClassMap
) -> list[dict[str, Any]]:
    """COCO result dicts (pixels ``xywh``) for ``predictions[i]`` on ``dataset.images[i]``;
    detections the class map drops are left out."""
    if len(predictions) != len(dataset.images):
        raise ValueError(f"{len(predictions)} predictions for {len(dataset.images)} images")
    out: list[dict[str, Any]] = []
    for rec, dets in zip(dataset.images, predictions, strict=True):
        w, h = rec.width, rec.height
        for d in dets:
            cls = class_map(d)
            if cls is None:
                continue
            x0, y0, x1, y1 = (min(max(float(v), 0.0), 1.0) for v in d.box)
            bw, bh = (x1 - x0) * w, (y1 - y0) * h
            if bw <= 0 or bh <= 0:
                continue
            out.append(
                {
                    "image_id": int(rec.image_id),
                    "category_id": int(dataset.category_ids[cls]),
                    "bbox": [x0 * w, y0 * h, bw, bh],
                    "score": float(d.score),
                }
            )
    return out


_SUMMARY = ("mAP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100")


def _ap(precision: np.ndarray) -> float:
    """Mean of the valid (> -1) entries, as COCOeval.summarize; NaN when none."""
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else float("nan")


def evaluate_detections(
    dataset: Any,
    predictions: Sequence[Sequence[Detection]],
    class_map: ClassMap,
) -> DetectionMetrics:
    """COCO box evaluation of ``predictions`` (one list of detections per dataset image)."""
    from edgekit.data import to_coco_json

    COCO, COCOeval_faster = coco_api()
    gt = COCO(to_coco_json(dataset))
    results = coco_detections(dataset, predictions, class_map)
    cat_ids = list(dataset.category_ids)
    names = list(dataset.class_names)
    counts = dataset.class_counts()
    if not results:
        zeros = {k: 0.0 for k in _SUMMARY}
        per_class = {
            names[k]: {"AP": 0.0, "AP50": 0.0, "gt": int(counts[k])}
            for k in range(len(names))
            if counts[k]
        }
        recall = np.linspace(0.0, 1.0, 101)
        curves = {n: np.zeros_like(recall) for n in per_class}
        curves["all"] = np.zeros_like(recall)
        return DetectionMetrics(zeros, per_class, recall, curves, 0)
    dt = gt.loadRes(results)
    ev = COCOeval_faster(gt, dt, iouType="bbox", print_function=lambda *a, **k: None)
    ev.params.catIds = cat_ids
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    metrics = {k: coco_stat(v) for k, v in zip(_SUMMARY, ev.stats[: len(_SUMMARY)], strict=False)}
    precision = np.asarray(ev.eval["precision"])  # [T, R, K, A, M]
    recall = np.asarray(ev.params.recThrs, dtype=np.float64)
    iou50 = int(np.argmin(np.abs(np.asarray(ev.params.iouThrs) - 0.5)))
    per_class: dict[str, dict[str, float]] = {}
    curves: dict[str, np.ndarray] = {}
    for k, cat in enumerate(ev.params.catIds):
        c = cat_ids.index(int(cat))
        if not counts[c]:
            continue
        p = precision[:, :, k, 0, -1]
        per_class[names[c]] = {"AP": _ap(p), "AP50": _ap(p[iou50]), "gt": int(counts[c])}
        curves[names[c]] = np.where(p[iou50] > -1, p[iou50], 0.0)
    if curves:
        curves["all"] = np.mean([curves[n] for n in per_class], axis=0)
    return DetectionMetrics(metrics, per_class, recall, curves, len(results))


def coco_api() -> tuple[Any, Any]:
    """faster-coco-eval's ``COCO`` and ``COCOeval_faster``; DependencyMissing when absent."""
    try:
        from faster_coco_eval import COCO, COCOeval_faster
    except ImportError:
        raise DependencyMissing(
            "evaluation needs faster-coco-eval", hint="pip install 'edgekit[eval]'"
        ) from None
    return COCO, COCOeval_faster


def coco_stat(v: float) -> float:
    """A COCOeval summary value; its -1 ("no ground truth in this range") becomes NaN."""
    return float("nan") if float(v) < 0 else float(v)
