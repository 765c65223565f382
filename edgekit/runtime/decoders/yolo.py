"""YOLO decoders: anchor-free ``[4+C, N]`` heads (YOLOv8 style, ``yolo``) and in-model NMS
outputs (``yolo_nms``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgekit.core.boxes import cxcywh_to_xyxy, yxyx_to_xyxy
from edgekit.core.types import Detection, ModelSpec
from edgekit.errors import UnsupportedModelError
from edgekit.runtime.decoders.common import (
    PIXELS_0_1,
    Decode,
    Decoder,
    Outputs,
    Thresholds,
    detail_name,
    detail_shape,
    detection_args,
    make_detections,
    nms_detections,
    to_class_ids,
    valid_count,
)

__all__ = ["HEAD", "NMS", "decode", "decode_nms", "resolve_nms_outputs", "to_channels_first"]

# Boxes whose largest coordinate is at most this are taken as already normalized.
_NORMALIZED_MAX = 1.5


def _hw(input_size: int | Sequence[int] | None) -> tuple[float, float] | None:
    if input_size is None:
        return None
    if isinstance(input_size, (int, np.integer)):
        return float(input_size), float(input_size)
    size = tuple(input_size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"input_size must be (height, width) or an int, got {input_size!r}")
    return float(size[0]), float(size[1])


def to_channels_first(
    pred: np.ndarray,
    *,
    num_classes: int | None = None,
    extra: int = 4,
) -> np.ndarray:
    """Return the prediction as ``(extra + C, N)``, accepting ``(1, ·, ·)`` and the transpose.

    The channel axis is the one of size ``extra + num_classes`` when that is known and unique,
    otherwise the smaller axis (YOLO heads have far more candidates than channels) unless it is
    too small to hold a box and a class.
    """
    p = np.asarray(pred)
    if p.dtype.kind != "f":
        p = p.astype(np.float64)
    while p.ndim > 2 and p.shape[0] == 1:
        p = p[0]
    if p.ndim != 2:
        raise ValueError(
            f"YOLO output must be (4+C, N), (N, 4+C) or with a batch of 1, got {np.shape(pred)}"
        )
    rows, cols = p.shape
    if num_classes is not None:
        want = extra + int(num_classes)
        if rows == want and cols != want:
            return p
        if cols == want and rows != want:
            return p.T
    out = p if rows <= cols else p.T
    if out.shape[0] < extra + 1:  # fewer candidates than channels: the larger axis is channels
        out = out.T
    if out.shape[0] < extra + 1:
        raise ValueError(
            f"YOLO output {np.shape(pred)} has no axis with at least {extra + 1} channels (box + classes)"
        )
    return out


def decode(
    pred: np.ndarray,
    *,
    input_size: int | Sequence[int] | None = None,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    max_detections: int = 100,
    labels: Sequence[str] | None = None,
    label_offset: int = 0,
    class_agnostic: bool = False,
    normalized: bool | None = None,
    num_classes: int | None = None,
    has_objectness: bool = False,
    pre_nms_top_k: int | None = 3000,
) -> list[Detection]:
    """Decode a YOLO head ``(4+C, N)``: ``cx, cy, w, h`` then per-class scores (no objectness).

    Boxes are in input pixels (divided by ``input_size`` = (height, width)) unless ``normalized``;
    when ``normalized`` is None it is guessed (largest coordinate <= 1.5 means normalized). Each
    candidate keeps its best class; those scoring >= ``score_threshold`` (best ``pre_nms_top_k``)
    go through class-aware NMS (agnostic with ``class_agnostic``). ``has_objectness`` reads YOLOv5
    style ``(5+C, N)`` heads (score = objectness * class score).
    """
    extra = 5 if has_objectness else 4
    if num_classes is None and labels:
        num_classes = len(labels) - int(label_offset)
    p = to_channels_first(pred, num_classes=num_classes, extra=extra)
    with np.errstate(invalid="ignore", over="ignore"):
        cls = p[extra:]
        if has_objectness:
            cls = cls * p[4][None, :]
        # Best score per candidate; a NaN anywhere in a column makes it NaN: dropped below.
        scores = cls.max(axis=0)
        boxes = cxcywh_to_xyxy(p[:4].T)
        finite_box = np.isfinite(boxes).all(axis=1)
        cand = np.flatnonzero(finite_box & (scores >= score_threshold))
    if normalized is None:  # guessed from every finite box, not only the candidates
        all_finite = boxes[finite_box]
        normalized = bool(all_finite.size == 0 or np.abs(all_finite).max() <= _NORMALIZED_MAX)
    if pre_nms_top_k is not None and cand.size > pre_nms_top_k:
        cand = cand[np.argsort(-scores[cand], kind="stable")[: max(int(pre_nms_top_k), 0)]]
    class_ids = np.argmax(cls[:, cand], axis=0)
    boxes, scores = boxes[cand].astype(np.float64), scores[cand].astype(np.float64)
    if not normalized:
        hw = _hw(input_size)
        if hw is None:
            raise ValueError("YOLO boxes are in pixels: pass input_size=(height, width)")
        boxes = boxes / np.array([hw[1], hw[0], hw[1], hw[0]])
    return nms_detections(
        boxes, scores, class_ids, iou_threshold=iou_threshold, max_detections=max_detections,
        class_agnostic=class_agnostic, labels=labels, label_offset=label_offset,
    )  # fmt: skip


def decode_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    count: float | np.ndarray | None = None,
    *,
    box_format: str = "yxyx",
    input_size: int | Sequence[int] | None = None,
    normalized: bool | None = None,
    score_threshold: float = 0.25,
    max_detections: int | None = None,
    labels: Sequence[str] | None = None,
    label_offset: int = 0,
) -> list[Detection]:
    """Decode outputs of a model with NMS inside (``NON_MAX_SUPPRESSION_V4/V5``): rows already
    selected, padded; ``count`` (number of valid rows, None = all).

    ``box_format`` is "yxyx" or "xyxy"; boxes are normalized unless ``normalized=False`` (then
    divided by ``input_size``); None guesses from the values.
    """
    if box_format not in ("yxyx", "xyxy"):
        raise ValueError(f"box_format must be 'yxyx' or 'xyxy', got {box_format!r}")
    b = np.asarray(boxes, dtype=np.float64)
    while b.ndim > 2 and b.shape[0] == 1:
        b = b[0]
    if b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(
            f"boxes must have shape (N, 4) (optionally with a batch of 1), got {np.shape(boxes)}"
        )
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    c = np.asarray(classes, dtype=np.float64).reshape(-1)
    n = b.shape[0]
    if s.shape[0] != n or c.shape[0] != n:
        raise ValueError(
            f"boxes ({n}), scores ({s.shape[0]}) and classes ({c.shape[0]}) disagree in length"
        )
    n = valid_count(count, n)
    b, s, c = b[:n], s[:n], c[:n]
    with np.errstate(invalid="ignore"):
        keep = s >= score_threshold
    b, s, c = b[keep], s[keep], c[keep]
    if box_format == "yxyx":
        b = yxyx_to_xyxy(b)
    if normalized is None:
        finite = b[np.isfinite(b)]
        normalized = bool(finite.size == 0 or np.abs(finite).max() <= _NORMALIZED_MAX)
    if not normalized:
        hw = _hw(input_size)
        if hw is None:
            raise ValueError("boxes are in pixels: pass input_size=(height, width)")
        b = b / np.array([hw[1], hw[0], hw[1], hw[0]])
    return make_detections(
        b,
        s,
        to_class_ids(c),
        labels=labels,
        label_offset=label_offset,
        max_detections=max_detections,
    )


# --- the two decoders: which output is which, and one frame's outputs -> detections -----------


def _recognise_head(outputs: Outputs) -> dict | None:
    shapes = outputs.shapes
    if not (
        len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][0] == 1 and min(shapes[0][1:]) >= 5
    ):
        return None
    if shapes[0][2] == 56 and shapes[0][1] <= 10:
        raise UnsupportedModelError("MoveNet MultiPose ([1,6,56]) is not supported")
    return {"label_offset": 0}


def _head_classes(spec: ModelSpec, details: Sequence[dict]) -> int | None:
    """How many classes a YOLO head outputs."""
    if len(details) != 1:
        return None
    shape = detail_shape(details[0])
    if len(shape) != 3:
        return None
    extra = 5 if spec.decoder_params.get("has_objectness") else 4
    named = len(spec.labels) - int(spec.decoder_params.get("label_offset", 0))
    if spec.labels and named + extra in shape[1:]:
        return named  # the axis the decoder will read as channels (to_channels_first)
    channels = min(shape[1:]) if min(shape[1:]) > extra else max(shape[1:])
    return channels - extra


def _bind_head(spec: ModelSpec, details: Sequence[dict], name: str) -> Decode:
    def decode_head(outs: Sequence[np.ndarray], t: Thresholds) -> list:
        params = spec.decoder_params
        pred = outs[0][0] if outs[0].ndim == 3 else outs[0]
        return decode(
            pred,
            input_size=spec.input_size,
            class_agnostic=bool(params.get("class_agnostic", False)),
            has_objectness=bool(params.get("has_objectness", False)),
            **detection_args(spec, t),
        )

    return decode_head


_NMS_WORDS = {
    "boxes": ("box",),
    "scores": ("score",),
    "classes": ("class",),
    "count": ("count", "num"),
}


def resolve_nms_outputs(details: Sequence[dict]) -> dict[str, int]:
    """Positions of the boxes, scores, classes and count of an in-model NMS, by tensor name."""
    found: dict[str, int] = {}
    for key, words in _NMS_WORDS.items():
        hits = [i for i, d in enumerate(details) if any(w in detail_name(d).lower() for w in words)]
        if len(hits) != 1:
            names = [detail_name(d) for d in details]
            raise UnsupportedModelError(f"cannot tell which output is {key!r} from names {names}")
        found[key] = hits[0]
    return found


def _bind_nms(spec: ModelSpec, details: Sequence[dict], name: str) -> Decode:
    def decode_in_model_nms(outs: Sequence[np.ndarray], t: Thresholds) -> list:
        params = spec.decoder_params
        pos = params.get("outputs") or resolve_nms_outputs(details)
        boxes, scores, classes, count = (outs[pos[k]] for k in _NMS_WORDS)
        return decode_nms(
            boxes,
            scores,
            classes,
            count,
            box_format=str(params.get("box_format", "yxyx")),
            input_size=spec.input_size,
            **detection_args(spec, t, iou=False),
        )

    return decode_in_model_nms


HEAD = Decoder(
    "yolo",
    "detect",
    _bind_head,
    recognise=_recognise_head,
    input_domain=PIXELS_0_1,
    resize_mode="letterbox",
    known_as="YOLOv8 [1,4+C,N]",
    num_classes=_head_classes,
)
NMS = Decoder("yolo_nms", "detect", _bind_nms, input_domain=PIXELS_0_1)
