"""What every decoder shares: the :class:`Decoder` interface a decoder module fills in, the
thresholds it gets, and the helpers that build results (labels, detections, counts).

Every decoder reads already dequantized float arrays
(:func:`edgekit.runtime.preprocess.dequantize`) and returns results in *normalized coordinates
of the model input*; :class:`edgekit.runtime.model.Model` maps them to the frame with
:class:`edgekit.core.letterbox.Transform`. Wrong shapes raise ``ValueError`` naming the tensor;
non-finite values never crash a decoder (such candidates are dropped).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.core.boxes import batched_nms, clip01
from edgekit.core.types import Detection, ModelSpec

__all__ = [
    "BACKGROUND_LABELS",
    "PIXELS_0_1",
    "PIXELS_0_255",
    "PIXELS_PM1",
    "Decode",
    "Decoder",
    "Outputs",
    "Thresholds",
    "detail_name",
    "detail_shape",
    "detection_args",
    "label_args",
    "label_for",
    "label_offset",
    "make_detections",
    "nms_detections",
    "to_class_ids",
    "valid_count",
]

#: Input float domains, as the ``(mean, std)`` that maps 0..255 pixels onto them
#: (``x = (pixel - mean) / std``): [0, 1], [-1, 1], and the pixels themselves.
PIXELS_0_1: tuple[float, float] = (0.0, 255.0)
PIXELS_PM1: tuple[float, float] = (127.5, 127.5)
PIXELS_0_255: tuple[float, float] = (0.0, 1.0)

#: First label-file lines that name the background class rather than a real one.
BACKGROUND_LABELS = frozenset({"???", "background", "__background__", "bg"})


@dataclass(frozen=True, slots=True)
class Thresholds:
    """What a decoder keeps: results scoring >= ``score``, NMS at ``iou``, at most ``limit``."""

    score: float
    iou: float
    limit: int


#: A loaded model's decoder: (dequantized outputs in output order, thresholds) -> results.
Decode = Callable[[Sequence[np.ndarray], Thresholds], list]


@dataclass(frozen=True)
class Outputs:
    """A model's outputs as spec inference and output resolution see them: the interpreter's
    output ``details`` (in output order), the image input's ``input_size`` (height, width), the
    ``labels`` known so far and ``op_outputs``, the output tensors of its
    ``TFLite_Detection_PostProcess`` op in the op's order (None when there is none)."""

    details: Sequence[dict]
    input_size: tuple[int, int]
    labels: tuple[str, ...] = ()
    op_outputs: Sequence[int] | None = None

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [detail_shape(d) for d in self.details]


def _no_outputs(outputs: Outputs, params: Mapping[str, Any]) -> dict[str, Any]:
    return dict(params)


@dataclass(frozen=True)
class Decoder:
    """One value of :attr:`ModelSpec.decoder <edgekit.core.types.ModelSpec>`: the task it
    serves and how its outputs are found and read. A decoder module defines one (or two) and
    the ``DECODERS`` table in :mod:`edgekit.runtime.decoders` lists it.

    - ``bind(spec, output_details, model_name)``: the per-frame :data:`Decode` of one loaded
      model (it may keep what every frame needs, e.g. anchors, computed at its first frame).
    - ``resolve_outputs(outputs, decoder_params)``: the decoder parameters with what the
      :class:`Outputs` decide filled in (which output is which, a stride), when an edgekit
      model (its spec embedded) loads.
    - ``recognise(outputs)``: for a model without an edgekit spec, its decoder parameters when
      the :class:`Outputs` are this decoder's, else None (``UnsupportedModelError`` for a
      look-alike it refuses). None: never inferred.
    - ``input_domain``: the float domain the family's networks take (a third-party model's
      input is fed that, :mod:`edgekit.runtime.input_domain`); ``resize_mode`` (of a
      recognised model); ``known_as`` (how "cannot tell what kind of model this is" lists it);
      ``num_classes(spec, output_details)`` (how many classes the outputs hold, when the
      decoder can tell: label checks).
    """

    name: str
    task: str
    bind: Callable[[ModelSpec, Sequence[dict], str], Decode]
    resolve_outputs: Callable[[Outputs, Mapping[str, Any]], dict[str, Any]] = _no_outputs
    recognise: Callable[[Outputs], dict[str, Any] | None] | None = None
    input_domain: tuple[float, float] = PIXELS_PM1
    resize_mode: str = "resize"
    known_as: str = ""
    num_classes: Callable[[ModelSpec, Sequence[dict]], int | None] | None = None


def label_args(spec: ModelSpec) -> dict[str, Any]:
    """``labels`` and ``label_offset`` for a decode function: how ``spec`` names class ids."""
    return {"labels": spec.labels, "label_offset": int(spec.decoder_params.get("label_offset", 0))}


def detection_args(spec: ModelSpec, t: Thresholds, *, iou: bool = True) -> dict[str, Any]:
    """A detection decode function's thresholds and labels: ``score_threshold``,
    ``iou_threshold`` (unless ``iou`` is False: NMS done in the model), ``max_detections``,
    ``labels`` and ``label_offset``."""
    nms = {"iou_threshold": t.iou} if iou else {}
    return {"score_threshold": t.score, **nms, "max_detections": t.limit, **label_args(spec)}


def detail_shape(detail: dict) -> tuple[int, ...]:
    """An interpreter tensor detail's shape as a tuple of ints."""
    return tuple(int(v) for v in detail["shape"])


def detail_name(detail: dict) -> str:
    """An interpreter tensor detail's name ("" when it has none)."""
    return str(detail.get("name", ""))


def label_offset(labels: Sequence[str], num_classes: int | None) -> int:
    """Offset so that class ``c`` is named ``labels[c + offset]`` (see :func:`label_for`)."""
    if not labels:
        return 0
    if num_classes is not None:
        if len(labels) == num_classes - 1:  # 1001 outputs with 1000 names: output 0 = background
            return -1
        if len(labels) == num_classes + 1 and labels[0].strip().lower() in BACKGROUND_LABELS:
            return 1
        return 0
    return 1 if labels[0].strip().lower() in BACKGROUND_LABELS else 0


def label_for(labels: Sequence[str] | None, class_id: int, label_offset: int = 0) -> str:
    """``labels[class_id + label_offset]``, or "" when there is no such label."""
    if not labels:
        return ""
    i = int(class_id) + int(label_offset)
    return str(labels[i]) if 0 <= i < len(labels) else ""


def make_detections(
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    *,
    labels: Sequence[str] | None = None,
    label_offset: int = 0,
    max_detections: int | None = None,
) -> list[Detection]:
    """Clip boxes to [0, 1], drop non-finite or empty ones, sort by score, build Detections."""
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    c = np.asarray(class_ids).reshape(-1)
    ok = np.isfinite(s) & np.isfinite(b).all(axis=1)
    b, s, c = b[ok], s[ok], c[ok]
    # Order the corners, then clip: the box is what lies inside the model input.
    b = clip01(
        np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], axis=1)
    )
    nonempty = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    b, s, c = b[nonempty], s[nonempty], c[nonempty]
    order = np.argsort(-s, kind="stable")
    if max_detections is not None:
        order = order[: max(int(max_detections), 0)]
    out = []
    for i in order:
        cid = int(c[i])
        box = (float(b[i, 0]), float(b[i, 1]), float(b[i, 2]), float(b[i, 3]))
        out.append(Detection(box, cid, float(s[i]), label_for(labels, cid, label_offset)))
    return out


def nms_detections(
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    *,
    iou_threshold: float,
    max_detections: int,
    class_agnostic: bool = False,
    labels: Sequence[str] | None = None,
    label_offset: int = 0,
) -> list[Detection]:
    """Candidates through NMS (per class, or across classes with ``class_agnostic``), then
    :func:`make_detections`."""
    groups = np.zeros_like(class_ids) if class_agnostic else class_ids
    keep = batched_nms(boxes_xyxy, scores, groups, iou_threshold, max_detections)
    return make_detections(
        boxes_xyxy[keep],
        scores[keep],
        class_ids[keep],
        labels=labels,
        label_offset=label_offset,
        max_detections=max_detections,
    )


def valid_count(count: float | np.ndarray | None, n: int) -> int:
    """How many of ``n`` rows a post-processing op's ``count`` output says are valid: clipped to
    ``[0, n]``; ``None`` means all; +inf all, NaN/-inf none. Raises ``ValueError`` unless
    ``count`` is a single number."""
    if count is None:
        return n
    cnt = np.asarray(count, dtype=np.float64).reshape(-1)
    if cnt.size != 1:
        raise ValueError(f"count must be a single number, got shape {np.shape(count)}")
    v = float(cnt[0])
    return int(np.clip(v, 0, n)) if np.isfinite(v) else (n if v > 0 else 0)


def to_class_ids(values: np.ndarray) -> np.ndarray:
    """Float class outputs -> int64, non-finite -> -1 (never raises on NaN/inf)."""
    v = np.asarray(values, dtype=np.float64)
    out = np.full(v.shape, -1, dtype=np.int64)
    ok = np.isfinite(v) & (np.abs(v) < 2**62)
    out[ok] = np.rint(v[ok]).astype(np.int64)
    return out
