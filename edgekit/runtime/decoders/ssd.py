"""SSD decoders: ``TFLite_Detection_PostProcess`` outputs (``ssd_postprocess``), or raw box
encodings + anchors (``ssd_raw``)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgekit.core.anchors import anchors_from_params
from edgekit.core.boxes import yxyx_to_xyxy
from edgekit.core.types import Detection, ModelSpec
from edgekit.errors import UnsupportedModelError
from edgekit.runtime.decoders.common import (
    Decode,
    Decoder,
    Outputs,
    Thresholds,
    detail_name,
    detail_shape,
    detection_args,
    label_offset,
    make_detections,
    nms_detections,
    to_class_ids,
    valid_count,
)

__all__ = [
    "POSTPROCESS",
    "RAW",
    "decode_boxes",
    "decode_postprocessed",
    "decode_raw",
    "resolve_outputs",
]

# exp() argument cap for the box size terms (torchvision's bbox_xform_clip = log(1000 / 16)).
_MAX_LOG_SCALE = float(np.log(1000.0 / 16))


def _squeeze_batch(a: np.ndarray, ndim: int, name: str, last: int | None = None) -> np.ndarray:
    # Rows past TFLite_Detection_PostProcess's count are uninitialized and may hold signaling
    # NaNs, whose widening raises a spurious "invalid value" warning: they are dropped later.
    with np.errstate(invalid="ignore"):
        arr = np.asarray(a, dtype=np.float64)
    while arr.ndim > ndim and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != ndim or (last is not None and arr.shape[-1] != last):
        want = "(N,)" if ndim == 1 else f"(N, {last if last is not None else 'C'})"
        raise ValueError(
            f"{name} must have shape {want} (optionally with a batch of 1), got {np.shape(a)}"
        )
    return arr


def decode_postprocessed(
    boxes_yxyx: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray,
    count: float | np.ndarray | None = None,
    *,
    score_threshold: float = 0.5,
    labels: Sequence[str] | None = None,
    label_offset: int = 0,
    max_detections: int | None = None,
) -> list[Detection]:
    """Decode the four outputs of ``TFLite_Detection_PostProcess``.

    ``boxes_yxyx`` (N, 4) normalized ``ymin, xmin, ymax, xmax``; ``classes`` (N,) class indices
    (floats); ``scores`` (N,); ``count`` the number of valid rows (a float in TFLite; None = all).
    A batch dimension of 1 is accepted. The label of class ``c`` is ``labels[c + label_offset]``
    (``label_offset=1`` for label maps whose first line is the background "???").
    """
    b = _squeeze_batch(boxes_yxyx, 2, "boxes", 4)
    c = _squeeze_batch(classes, 1, "classes")
    s = _squeeze_batch(scores, 1, "scores")
    n = b.shape[0]
    if c.shape[0] != n or s.shape[0] != n:
        raise ValueError(
            f"boxes ({n}), classes ({c.shape[0]}) and scores ({s.shape[0]}) disagree in length"
        )
    n = valid_count(count, n)
    b, c, s = b[:n], c[:n], s[:n]
    keep = s >= score_threshold
    return make_detections(
        yxyx_to_xyxy(b[keep]),
        s[keep],
        to_class_ids(c[keep]),
        labels=labels,
        label_offset=label_offset,
        max_detections=max_detections,
    )


def decode_boxes(
    box_encodings: np.ndarray,
    anchors: np.ndarray,
    scales: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
) -> np.ndarray:
    """Standard SSD box coder: ``(ty, tx, th, tw)`` against anchors ``(cy, cx, h, w)`` -> xyxy.

    ``cy = ty / sy * ha + cya``, ``h = exp(th / sh) * ha`` (and the same for x, w). The exponent
    is capped so huge encodings give huge but finite boxes.
    """
    e = _squeeze_batch(box_encodings, 2, "box_encodings", 4)
    a = _squeeze_batch(anchors, 2, "anchors", 4)
    if e.shape[0] != a.shape[0]:
        raise ValueError(f"box_encodings has {e.shape[0]} rows but anchors has {a.shape[0]}")
    sy, sx, sh, sw = (float(v) for v in scales)
    if min(sy, sx, sh, sw) <= 0:
        raise ValueError(f"scales must be positive, got {tuple(scales)}")
    with np.errstate(invalid="ignore", over="ignore"):
        cy = e[:, 0] / sy * a[:, 2] + a[:, 0]
        cx = e[:, 1] / sx * a[:, 3] + a[:, 1]
        h = np.exp(np.minimum(e[:, 2] / sh, _MAX_LOG_SCALE)) * a[:, 2]
        w = np.exp(np.minimum(e[:, 3] / sw, _MAX_LOG_SCALE)) * a[:, 3]
        return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def _activate(logits: np.ndarray, activation: str) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        if activation == "sigmoid":
            return 0.5 * (1.0 + np.tanh(0.5 * logits))
        if activation == "softmax":
            z = logits - np.max(
                np.where(np.isfinite(logits), logits, -np.inf), axis=1, keepdims=True
            )
            z = np.where(np.isfinite(z), z, -np.inf)
            ez = np.exp(z)
            total = ez.sum(axis=1, keepdims=True)
            return np.divide(ez, total, out=np.zeros_like(ez), where=total > 0)
    raise ValueError(f"activation must be 'sigmoid' or 'softmax', got {activation!r}")


def decode_raw(
    box_encodings: np.ndarray,
    class_scores: np.ndarray,
    anchors: np.ndarray,
    *,
    scales: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
    has_background: bool = True,
    score_threshold: float = 0.5,
    iou_threshold: float = 0.5,
    max_detections: int = 100,
    labels: Sequence[str] | None = None,
    label_offset: int = 0,
    scores_are_logits: bool = False,
    activation: str = "sigmoid",
    class_agnostic: bool = False,
    pre_nms_top_k: int | None = 3000,
) -> list[Detection]:
    """Decode raw SSD heads: box encodings (A, 4), class scores (A, C[+1]), anchors (A, 4).

    With ``scores_are_logits`` the scores go through ``activation`` ("sigmoid" or "softmax",
    softmax over all columns including the background). With ``has_background`` the first column
    is dropped and class ids count from the first real class. Every (anchor, class) pair above
    ``score_threshold`` is a candidate; the best ``pre_nms_top_k`` go through per-class NMS
    (class-agnostic when asked) and the best ``max_detections`` are returned.
    """
    scores = _squeeze_batch(class_scores, 2, "class_scores")
    boxes = decode_boxes(box_encodings, anchors, scales)
    if scores.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"class_scores has {scores.shape[0]} rows but there are {boxes.shape[0]} anchors"
        )
    if scores_are_logits:
        scores = _activate(scores, activation)
    if has_background:
        if scores.shape[1] < 2:
            raise ValueError(
                f"class_scores needs a background column and at least one class, got {scores.shape}"
            )
        scores = scores[:, 1:]
    valid_box = np.isfinite(boxes).all(axis=1)
    with np.errstate(invalid="ignore"):
        cand = (scores >= score_threshold) & valid_box[:, None]
    anchor_idx, class_idx = np.nonzero(cand)
    cand_scores = scores[anchor_idx, class_idx]
    if pre_nms_top_k is not None and cand_scores.size > pre_nms_top_k:
        top = np.argsort(-cand_scores, kind="stable")[: max(int(pre_nms_top_k), 0)]
        anchor_idx, class_idx, cand_scores = anchor_idx[top], class_idx[top], cand_scores[top]
    return nms_detections(
        boxes[anchor_idx], cand_scores, class_idx, iou_threshold=iou_threshold,
        max_detections=max_detections, class_agnostic=class_agnostic, labels=labels,
        label_offset=label_offset,
    )  # fmt: skip


# --- the two decoders: which output is which, and one frame's outputs -> detections -----------

_POSTPROCESS_OUTPUTS = ("boxes", "classes", "scores", "count")  # the op's order


def resolve_outputs(
    outputs: Sequence[dict], postprocess_op_outputs: Sequence[int] | None = None
) -> dict[str, int]:
    """Positions (in ``outputs``) of the boxes, classes, scores and count of a
    ``TFLite_Detection_PostProcess`` model.

    Decided, in order, by the op's own output tensor order (``postprocess_op_outputs``, tensor
    indices, when the interpreter exposes it), then by shape (boxes ``[1,N,4]``, count ``[1]``)
    and tensor names for classes vs scores (``class``/``score`` in the name, or the op's
    ``:1``/``:2`` suffixes), falling back to the documented order boxes, classes, scores, count.
    """
    if len(outputs) != 4:
        raise UnsupportedModelError(
            f"an SSD post-processed model has 4 outputs, found {len(outputs)}"
        )
    if postprocess_op_outputs is not None and len(postprocess_op_outputs) == 4:
        by_tensor = {int(d["index"]): i for i, d in enumerate(outputs)}
        if all(int(t) in by_tensor for t in postprocess_op_outputs):
            pos = [by_tensor[int(t)] for t in postprocess_op_outputs]
            return dict(zip(_POSTPROCESS_OUTPUTS, pos, strict=True))
    shapes = [detail_shape(d) for d in outputs]
    boxes = [i for i, s in enumerate(shapes) if len(s) == 3 and s[-1] == 4]
    count = [i for i, s in enumerate(shapes) if int(np.prod(s)) == 1 and len(s) <= 2]
    if len(boxes) != 1 or len(count) != 1:
        raise UnsupportedModelError(
            f"outputs {shapes} are not the SSD post-process outputs (boxes [1,N,4], classes, scores, count [1])"
        )
    rest = [i for i in range(4) if i not in (boxes[0], count[0])]
    n = shapes[boxes[0]][1]
    if any(shapes[i] not in ((1, n), (n,)) for i in rest):
        raise UnsupportedModelError(f"SSD outputs {shapes}: classes and scores must be [1,{n}]")
    classes = scores = None
    for i in rest:
        lower = detail_name(outputs[i]).lower()
        if "class" in lower or "label" in lower:
            classes = i
        elif "score" in lower:
            scores = i
    if classes is None or scores is None or classes == scores:
        suffix = {i: _suffix(detail_name(outputs[i])) for i in rest}
        if all("detection_postprocess" in detail_name(outputs[i]).lower() for i in rest) and sorted(
            suffix.values()
        ) == [1, 2]:
            classes = next(i for i in rest if suffix[i] == 1)
            scores = next(i for i in rest if suffix[i] == 2)
        else:
            classes, scores = rest  # documented TF1 order: boxes, classes, scores, count
    return {"boxes": boxes[0], "classes": classes, "scores": scores, "count": count[0]}


def _suffix(name: str) -> int:
    m = re.search(r":(\d+)$", name)
    return int(m.group(1)) if m else 0


def _complete_postprocess(outputs: Outputs, params: Mapping[str, Any]) -> dict:
    params = dict(params)
    if "outputs" not in params or outputs.op_outputs:
        # The post-process op's own output order is authoritative over positions in the spec.
        params["outputs"] = resolve_outputs(outputs.details, outputs.op_outputs)
    return params


def _recognise_postprocess(outputs: Outputs) -> dict | None:
    shapes = outputs.shapes
    if not (
        len(shapes) == 4
        and sum(len(s) == 3 and s[-1] == 4 for s in shapes) == 1
        and any(int(np.prod(s)) == 1 for s in shapes)
    ):
        return None
    return {
        "outputs": resolve_outputs(outputs.details, outputs.op_outputs),
        "label_offset": label_offset(outputs.labels, None),
    }


def _bind_postprocess(spec: ModelSpec, details: Sequence[dict], name: str) -> Decode:
    def decode(outs: Sequence[np.ndarray], t: Thresholds) -> list:
        pos = spec.decoder_params["outputs"]
        boxes, classes, scores, count = (outs[pos[k]] for k in _POSTPROCESS_OUTPUTS)
        return decode_postprocessed(
            boxes, classes, scores, count, **detection_args(spec, t, iou=False)
        )

    return decode


def _raw_outputs(spec: ModelSpec, details: Sequence[dict], name: str) -> tuple[int, int]:
    """Positions of the box encodings and the class scores of an ``ssd_raw`` model."""
    pos = spec.decoder_params.get("outputs")
    if pos:
        return int(pos["box_encodings"]), int(pos["class_scores"])
    shapes = [detail_shape(d) for d in details]
    boxes = [i for i, s in enumerate(shapes) if s[-1] == 4]
    if len(shapes) != 2 or len(boxes) != 1:
        raise UnsupportedModelError(
            f"{name}: ssd_raw needs box encodings [1,A,4] and class scores [1,A,C], got {shapes}"
        )
    return boxes[0], 1 - boxes[0]


_RAW_OPTIONS = ("scales", "has_background", "scores_are_logits", "activation", "class_agnostic")


def _bind_raw(spec: ModelSpec, details: Sequence[dict], name: str) -> Decode:
    anchors: list[np.ndarray] = []  # made from the spec at the first frame, then kept

    def decode(outs: Sequence[np.ndarray], t: Thresholds) -> list:
        params = spec.decoder_params
        bi, si = _raw_outputs(spec, details, name)
        options = {k: params[k] for k in _RAW_OPTIONS if k in params}
        encodings, scores = outs[bi], outs[si]
        if not anchors:
            try:
                anchors.append(anchors_from_params(params))
            except (ValueError, TypeError) as exc:
                raise UnsupportedModelError(f"{name}: {exc}") from None
        return decode_raw(encodings, scores, anchors[0], **detection_args(spec, t), **options)

    return decode


POSTPROCESS = Decoder(
    "ssd_postprocess",
    "detect",
    _bind_postprocess,
    resolve_outputs=_complete_postprocess,
    recognise=_recognise_postprocess,
    resize_mode="resize",
    known_as="SSD post-process",
)
RAW = Decoder("ssd_raw", "detect", _bind_raw)
