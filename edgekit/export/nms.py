"""Non-maximum suppression inside the exported model, with builtin TFLite ops only.

- SSD (``decoder="ssd_raw"``): box encodings + class scores + anchors (a constant) go through
  ``TFLite_Detection_PostProcess``, the op of the standard SSD models. It is declared with
  ``tf.function(experimental_implements=...)``; the converter replaces the function by the op
  (its body is never run). Result decoder: ``"ssd_postprocess"``.
- YOLO (``decoder="yolo"``): ``NON_MAX_SUPPRESSION_V4`` (padded) or ``_V5`` (with scores),
  class-agnostic (a class offset added to int8 boxes would ruin their precision). Result
  decoder: ``"yolo_nms"`` with boxes ``yxyx`` normalized to the input.

Never ``combined_non_max_suppression``: it only converts as a Flex op, which device runtimes
cannot run. TensorFlow is imported lazily, so importing this module stays cheap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.core.types import ModelSpec
from edgekit.errors import ExportError, UsageError

NMS_DECODERS = ("ssd_raw", "yolo")
SSD_OUTPUTS = ("boxes", "classes", "scores", "count")


@dataclass(frozen=True)
class NMSConfig:
    max_detections: int = 100
    score_threshold: float = 0.05
    iou_threshold: float = 0.5
    yolo_op: str = "v4"  # "v4" (padded) or "v5" (with scores)

    def __post_init__(self) -> None:
        if self.max_detections < 1:
            raise UsageError(f"max_detections must be >= 1, got {self.max_detections}")
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise UsageError(f"iou_threshold must be in [0, 1], got {self.iou_threshold}")
        if self.yolo_op not in ("v4", "v5"):
            raise UsageError(f"yolo_op must be 'v4' or 'v5', got {self.yolo_op!r}")


def ssd_anchor_array(spec: ModelSpec) -> np.ndarray:
    """The ``(A, 4)`` (cy, cx, h, w) anchors an ``ssd_raw`` spec describes."""
    from edgekit.core.anchors import anchors_from_params

    try:
        return anchors_from_params(spec.decoder_params)
    except ValueError as exc:
        raise ExportError(f"SSD spec {spec.name!r}: {exc}") from None


def ssd_output_positions(model: Any, spec: ModelSpec) -> tuple[int, int]:
    """Positions of (box encodings, class scores) among the Keras model's outputs."""
    pos = spec.decoder_params.get("outputs")
    if isinstance(pos, dict) and "box_encodings" in pos and "class_scores" in pos:
        return int(pos["box_encodings"]), int(pos["class_scores"])
    names = [
        str(n).lower()
        for n in spec.decoder_params.get("output_names") or getattr(model, "output_names", [])
    ]
    if len(names) == 2:
        boxes = [i for i, n in enumerate(names) if "box" in n]
        if len(boxes) == 1:
            return boxes[0], 1 - boxes[0]
    return 0, 1


def _implements_attrs(spec: ModelSpec, num_classes: int, cfg: NMSConfig) -> str:
    sy, sx, sh, sw = (float(v) for v in spec.decoder_params.get("scales", (10.0, 10.0, 5.0, 5.0)))
    attrs = [
        'name: "TFLite_Detection_PostProcess"',
        f'attr {{ key: "max_detections" value {{ i: {cfg.max_detections} }} }}',
        'attr { key: "max_classes_per_detection" value { i: 1 } }',
        'attr { key: "detections_per_class" value { i: 100 } }',
        'attr { key: "use_regular_nms" value { b: false } }',
        f'attr {{ key: "nms_score_threshold" value {{ f: {cfg.score_threshold} }} }}',
        f'attr {{ key: "nms_iou_threshold" value {{ f: {cfg.iou_threshold} }} }}',
        f'attr {{ key: "y_scale" value {{ f: {sy} }} }}',
        f'attr {{ key: "x_scale" value {{ f: {sx} }} }}',
        f'attr {{ key: "h_scale" value {{ f: {sh} }} }}',
        f'attr {{ key: "w_scale" value {{ f: {sw} }} }}',
        f'attr {{ key: "num_classes" value {{ i: {num_classes} }} }}',
    ]
    return " ".join(attrs)


def ssd_serving_fn(model: Any, spec: ModelSpec, cfg: NMSConfig) -> tuple[Callable, ModelSpec]:
    """``images -> (boxes, classes, scores, count)`` through ``TFLite_Detection_PostProcess``."""
    import tensorflow as tf

    anchors = ssd_anchor_array(spec)
    bi, si = ssd_output_positions(model, spec)
    shapes = [tuple(o.shape) for o in model.outputs]
    if len(shapes) != 2 or shapes[bi][-1] != 4:
        raise ExportError(
            f"SSD model outputs {shapes}: expected box encodings [1,A,4] and class scores [1,A,C+1]"
        )
    if shapes[bi][1] != anchors.shape[0]:
        raise ExportError(
            f"SSD model predicts {shapes[bi][1]} boxes but the spec has {anchors.shape[0]} anchors"
        )
    params = spec.decoder_params
    has_background = bool(params.get("has_background", True))
    num_classes = int(shapes[si][-1]) - (1 if has_background else 0)
    impl = _implements_attrs(spec, num_classes, cfg)
    n = cfg.max_detections

    @tf.function(experimental_implements=impl)
    def postprocess(box_encodings, class_predictions, anchor_boxes):  # body replaced by the op
        del box_encodings, class_predictions, anchor_boxes
        return (
            tf.zeros([1, n, 4], tf.float32),
            tf.zeros([1, n], tf.float32),
            tf.zeros([1, n], tf.float32),
            tf.zeros([1], tf.float32),
        )

    const_anchors = tf.constant(anchors)
    logits_in = bool(params.get("scores_are_logits", False))
    activation = str(params.get("activation", "sigmoid"))

    def serve(images):
        outs = model(images, training=False)
        enc, scores = outs[bi], outs[si]
        if logits_in:
            scores = (
                tf.nn.softmax(scores, axis=-1) if activation == "softmax" else tf.sigmoid(scores)
            )
        if not has_background:  # the op always skips column 0
            scores = tf.pad(scores, [[0, 0], [0, 0], [1, 0]])
        return postprocess(enc, scores, const_anchors)

    new_params = {
        k: v
        for k, v in params.items()
        if k
        not in (
            "anchors",
            "anchor_config",
            "outputs",
            "scores_are_logits",
            "activation",
            "scales",
            "has_background",
        )
    }
    new_params.update(
        nms=True,
        max_detections=n,
        nms_score_threshold=cfg.score_threshold,
        iou_threshold=cfg.iou_threshold,
        outputs={k: i for i, k in enumerate(SSD_OUTPUTS)},
    )
    new_spec = dataclasses.replace(spec, decoder="ssd_postprocess", decoder_params=new_params)
    return serve, new_spec


def yolo_serving_fn(model: Any, spec: ModelSpec, cfg: NMSConfig) -> tuple[Callable, ModelSpec]:
    """``images -> (boxes yxyx normalized, classes, scores, count)`` through builtin NMS."""
    import tensorflow as tf

    shape = tuple(model.outputs[0].shape)
    if len(model.outputs) != 1 or len(shape) != 3:
        raise ExportError(
            f"YOLO model must have one [1, 4+C, N] output, got {[tuple(o.shape) for o in model.outputs]}"
        )
    params = spec.decoder_params
    has_obj = bool(params.get("has_objectness", False))
    extra = 5 if has_obj else 4
    channels_first = shape[1] < shape[2]
    normalized = bool(params.get("normalized", True))
    in_h, in_w = spec.input_size
    k = cfg.max_detections
    use_v5 = cfg.yolo_op == "v5"

    def serve(images):
        pred = model(images, training=False)[0]
        if channels_first:
            pred = tf.transpose(pred)  # (N, 4+C)
        cls = pred[:, extra:]
        if has_obj:
            cls = cls * pred[:, 4:5]
        scores = tf.reduce_max(cls, axis=-1)
        classes = tf.argmax(cls, axis=-1, output_type=tf.int32)
        sx, sy = (1.0, 1.0) if normalized else (1.0 / in_w, 1.0 / in_h)
        cx, cy = pred[:, 0] * sx, pred[:, 1] * sy
        hw, hh = pred[:, 2] * (sx / 2), pred[:, 3] * (sy / 2)
        boxes = tf.stack([cy - hh, cx - hw, cy + hh, cx + hw], axis=-1)
        if use_v5:
            idx, _ = tf.image.non_max_suppression_with_scores(
                boxes,
                scores,
                k,
                iou_threshold=cfg.iou_threshold,
                score_threshold=cfg.score_threshold,
            )
            count = tf.shape(idx)[0]
            idx = tf.pad(idx, [[0, k - count]])
        else:
            idx, count = tf.raw_ops.NonMaxSuppressionV4(
                boxes=boxes,
                scores=scores,
                max_output_size=k,
                iou_threshold=cfg.iou_threshold,
                score_threshold=cfg.score_threshold,
                pad_to_max_output_size=True,
            )
        valid = tf.range(k) < count
        out_boxes = tf.where(valid[:, None], tf.gather(boxes, idx), 0.0)
        out_scores = tf.where(valid, tf.gather(scores, idx), 0.0)
        out_classes = tf.where(valid, tf.gather(classes, idx), 0)
        return (
            out_boxes[None],
            tf.cast(out_classes, tf.float32)[None],
            out_scores[None],
            tf.cast(count, tf.float32)[None],
        )

    new_params = {
        k_: v
        for k_, v in params.items()
        if k_ not in ("outputs", "normalized", "has_objectness", "num_classes")
    }
    new_params.update(
        nms=True,
        nms_op=f"NON_MAX_SUPPRESSION_{cfg.yolo_op.upper()}",
        class_agnostic=True,
        max_detections=k,
        nms_score_threshold=cfg.score_threshold,
        iou_threshold=cfg.iou_threshold,
        box_format="yxyx",
        outputs={name: i for i, name in enumerate(SSD_OUTPUTS)},
    )
    new_spec = dataclasses.replace(spec, decoder="yolo_nms", decoder_params=new_params)
    return serve, new_spec


def nms_serving_fn(
    model: Any, spec: ModelSpec, cfg: NMSConfig | None = None
) -> tuple[Callable, ModelSpec]:
    """The serving function with NMS for ``spec.decoder`` and the spec of the result."""
    cfg = cfg or NMSConfig()
    if spec.decoder == "ssd_raw":
        return ssd_serving_fn(model, spec, cfg)
    if spec.decoder == "yolo":
        return yolo_serving_fn(model, spec, cfg)
    raise UsageError(
        f"--nms needs a detector with raw outputs (decoder {' or '.join(NMS_DECODERS)}); "
        f"{spec.name or 'this model'} has decoder {spec.decoder!r}"
    )
