"""Losses for each zoo head (Keras 3 ``keras.ops``, any backend; y_true as ``edgekit.data.encode``
packs it). Each loss returns one scalar for the (replica's) batch, normalized by its number of
positives, so Keras' ``sum_over_batch_size`` reduction leaves it unchanged and the distribution
machinery averages it over replicas.

- classification: ``keras.losses.CategoricalCrossentropy(label_smoothing=...)`` (softmax output);
- SSD: ``SSDClassLoss`` sigmoid focal loss over the ``C + 1`` columns (the zoo's decoder_params
  say ``activation: sigmoid``; the head's bias starts at the focal prior), ignored anchors masked;
  ``SSDBoxLoss`` smooth L1 on the encodings of positive anchors;
- YOLO: ``YoloClassLoss`` BCE on every cell and class (negatives learn "no object": the class
  scores are the objectness of this anchor-free head); ``YoloBoxLoss`` 1 - CIoU (or GIoU) of the
  predicted and target ``(l, t, r, b)`` on positive cells;
- pose: ``HeatmapFocalLoss`` (CenterNet's penalty-reduced focal loss on sigmoid heatmaps) and
  ``MaskedL1Loss`` for keypoint offsets and centre-to-keypoint regression.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

__all__ = [
    "HeatmapFocalLoss",
    "MaskedL1Loss",
    "SSDBoxLoss",
    "SSDClassLoss",
    "YoloBoxLoss",
    "YoloClassLoss",
    "box_iou_ltrb",
    "losses_for",
]

_EPS = 1e-7


def _f32(x: Any) -> Any:
    return ops.cast(x, "float32")


class _Scalar(keras.losses.Loss):
    """A loss whose ``call`` already returns the batch's scalar."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        kwargs.setdefault("reduction", "sum_over_batch_size")
        super().__init__(name=name, **kwargs)


@keras.saving.register_keras_serializable(package="edgekit")
class SSDClassLoss(_Scalar):
    """Sigmoid focal loss on ``class_logits`` (B, A, C+1); y_true (B, A, 1): 0 background,
    c+1 class c, -1 ignored. As in RetinaNet, a background anchor is one whose class columns
    are all 0; column 0 (which the decoder drops after the sigmoid) is left out of the loss.
    Sum over anchors and class columns / number of positive anchors.

    Distillation: when y_true is (B, A, 1 + C), columns 1.. are a teacher's probabilities at
    ``temperature`` T (:mod:`edgekit.train.soft_targets`), and ``soft_weight`` times
    ``T^2 * QFL(sigmoid(logits / T), p_teacher)`` (quality focal loss, |p - q|^beta * BCE,
    every anchor) is added, normalized the same way."""

    def __init__(
        self,
        alpha: float = 0.25,
        gamma: float = 2.0,
        name: str = "ssd_class",
        soft_weight: float = 0.0,
        temperature: float = 1.0,
        soft_beta: float = 2.0,
        **kw: Any,
    ) -> None:
        super().__init__(name=name, **kw)
        self.alpha, self.gamma = float(alpha), float(gamma)
        self.soft_weight, self.temperature = float(soft_weight), float(temperature)
        self.soft_beta = float(soft_beta)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        logits = _f32(y_pred)
        y_true = _f32(y_true)
        soft = y_true[..., 1:] if y_true.shape[-1] > 1 else None
        cls = ops.cast(ops.reshape(y_true[..., 0], ops.shape(logits)[:2]), "int32")
        num_cols = ops.shape(logits)[-1]
        target = ops.one_hot(ops.maximum(cls, 0), num_cols)
        valid = _f32(cls >= 0)[..., None]
        p = ops.sigmoid(logits)
        ce = ops.maximum(logits, 0.0) - logits * target + ops.log1p(ops.exp(-ops.abs(logits)))
        p_t = p * target + (1 - p) * (1 - target)
        a_t = self.alpha * target + (1 - self.alpha) * (1 - target)
        loss = a_t * ops.power(1.0 - p_t, self.gamma) * ce * valid
        num_pos = ops.maximum(ops.sum(_f32(cls > 0)), 1.0)
        hard = ops.sum(loss[..., 1:]) / num_pos  # the background column is not trained
        if soft is None or self.soft_weight == 0.0:
            return hard
        t = self.temperature
        z = logits[..., 1:] / t
        q = ops.sigmoid(z)
        bce = ops.maximum(z, 0.0) - z * soft + ops.log1p(ops.exp(-ops.abs(z)))
        qfl = ops.power(ops.abs(soft - q), self.soft_beta) * bce
        return hard + self.soft_weight * t * t * ops.sum(qfl) / num_pos

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "gamma": self.gamma,
            "soft_weight": self.soft_weight,
            "temperature": self.temperature,
            "soft_beta": self.soft_beta,
        }


@keras.saving.register_keras_serializable(package="edgekit")
class SSDBoxLoss(_Scalar):
    """Smooth L1 (Huber, delta 1) on ``box_encodings`` (B, A, 4) of positive anchors; y_true
    (B, A, 5) = target encodings + positive flag. Sum / number of positives."""

    def __init__(self, delta: float = 1.0, name: str = "ssd_box", **kw: Any) -> None:
        super().__init__(name=name, **kw)
        self.delta = float(delta)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = _f32(y_true)
        pos = y_true[..., 4:5]
        d = ops.abs(_f32(y_pred) - y_true[..., :4])
        huber = ops.where(d < self.delta, 0.5 * d * d / self.delta, d - 0.5 * self.delta)
        return ops.sum(huber * pos) / ops.maximum(ops.sum(pos), 1.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "delta": self.delta}


def box_iou_ltrb(pred: Any, target: Any, kind: str = "ciou") -> Any:
    """IoU variants between boxes given as distances ``(l, t, r, b)`` from the same point
    (the YOLO head's cell centre): "iou", "giou" or "ciou". Shapes (..., 4) -> (...)."""
    pl, pt, pr, pb = (pred[..., i] for i in range(4))
    tl, tt, tr, tb = (target[..., i] for i in range(4))
    pw, ph = pl + pr, pt + pb
    tw, th = tl + tr, tt + tb
    iw = ops.maximum(ops.minimum(pl, tl) + ops.minimum(pr, tr), 0.0)
    ih = ops.maximum(ops.minimum(pt, tt) + ops.minimum(pb, tb), 0.0)
    inter = iw * ih
    union = pw * ph + tw * th - inter + _EPS
    iou = inter / union
    if kind == "iou":
        return iou
    cw = ops.maximum(pl, tl) + ops.maximum(pr, tr)
    ch = ops.maximum(pt, tt) + ops.maximum(pb, tb)
    if kind == "giou":
        hull = cw * ch + _EPS
        return iou - (hull - union) / hull
    if kind != "ciou":
        raise ValueError(f"IoU kind must be iou, giou or ciou, got {kind!r}")
    diag = cw * cw + ch * ch + _EPS
    dx = ((pr - pl) - (tr - tl)) / 2  # centre offsets relative to the shared point
    dy = ((pb - pt) - (tb - tt)) / 2
    rho = dx * dx + dy * dy
    v = (4 / (3.141592653589793**2)) * ops.square(
        ops.arctan(tw / (th + _EPS)) - ops.arctan(pw / (ph + _EPS))
    )
    alpha = ops.stop_gradient(v / (1 - iou + v + _EPS))
    return iou - rho / diag - alpha * v


@keras.saving.register_keras_serializable(package="edgekit")
class YoloBoxLoss(_Scalar):
    """``1 - CIoU`` (or GIoU) on ``box_distances`` (B, N, 4) of positive cells; y_true (B, N, 5)
    = target ``(l, t, r, b)`` in stride units + positive flag. Sum / number of positives."""

    def __init__(self, kind: str = "ciou", name: str = "yolo_box", **kw: Any) -> None:
        super().__init__(name=name, **kw)
        self.kind = kind

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = _f32(y_true)
        pos = y_true[..., 4]
        iou = box_iou_ltrb(_f32(y_pred), y_true[..., :4], self.kind)
        return ops.sum((1.0 - iou) * pos) / ops.maximum(ops.sum(pos), 1.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "kind": self.kind}


@keras.saving.register_keras_serializable(package="edgekit")
class YoloClassLoss(_Scalar):
    """Sigmoid BCE on ``class_logits`` (B, N, C) against one-hot targets (zeros at negative
    cells). Sum over cells and classes / number of positive cells."""

    def __init__(self, name: str = "yolo_class", **kw: Any) -> None:
        super().__init__(name=name, **kw)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        t = _f32(y_true)
        x = _f32(y_pred)
        ce = ops.maximum(x, 0.0) - x * t + ops.log1p(ops.exp(-ops.abs(x)))
        num_pos = ops.maximum(ops.sum(ops.max(t, axis=-1)), 1.0)
        return ops.sum(ce) / num_pos


@keras.saving.register_keras_serializable(package="edgekit")
class HeatmapFocalLoss(_Scalar):
    """CenterNet's penalty-reduced pixel-wise focal loss on a sigmoid heatmap (B, H, W, K);
    y_true the Gaussian targets (1 at peaks). Sum / number of peaks."""

    def __init__(
        self, alpha: float = 2.0, beta: float = 4.0, name: str = "heatmap_focal", **kw: Any
    ) -> None:
        super().__init__(name=name, **kw)
        self.alpha, self.beta = float(alpha), float(beta)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        gt = _f32(y_true)
        p = ops.clip(_f32(y_pred), 1e-4, 1.0 - 1e-4)
        peak = _f32(gt >= 1.0 - 1e-4)
        pos = ops.log(p) * ops.power(1 - p, self.alpha) * peak
        neg = ops.log(1 - p) * ops.power(p, self.alpha) * ops.power(1 - gt, self.beta) * (1 - peak)
        return -ops.sum(pos + neg) / ops.maximum(ops.sum(peak), 1.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta}


@keras.saving.register_keras_serializable(package="edgekit")
class MaskedL1Loss(_Scalar):
    """L1 on (B, H, W, 2K) predictions where y_true (B, H, W, 3K) = 2K targets + a K-channel
    mask; sum over masked (y, x) pairs / number of masked keypoints."""

    def __init__(self, name: str = "masked_l1", **kw: Any) -> None:
        super().__init__(name=name, **kw)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = _f32(y_true)
        pred = _f32(y_pred)
        two_k = ops.shape(pred)[-1]
        target, mask = y_true[..., :two_k], y_true[..., two_k:]
        mask2 = ops.repeat(mask, 2, axis=-1)  # (y, x) of keypoint j are channels 2j, 2j+1
        return ops.sum(ops.abs(pred - target) * mask2) / ops.maximum(ops.sum(mask), 1.0)


def losses_for(
    task_kind: str,
    *,
    label_smoothing: float = 0.1,
    soft_weight: float = 0.0,
    temperature: float = 1.0,
) -> tuple[list[Any], list[float]]:
    """Per-output losses and weights of a head kind ("classify", "ssd", "yolo", "pose"),
    in the order of the (raw) model's outputs. ``soft_weight``/``temperature``: the SSD class
    loss's distillation term (see :class:`SSDClassLoss`)."""
    if task_kind == "classify":
        return [keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)], [1.0]
    if task_kind == "ssd":
        cls = SSDClassLoss(soft_weight=soft_weight, temperature=temperature)
        return [SSDBoxLoss(), cls], [1.0, 1.0]
    if task_kind == "yolo":
        return [YoloBoxLoss("ciou"), YoloClassLoss()], [2.0, 1.0]
    if task_kind == "pose":
        return (
            [
                HeatmapFocalLoss(name="center_focal"),
                MaskedL1Loss(name="regression_l1"),
                HeatmapFocalLoss(name="keypoint_focal"),
                MaskedL1Loss(name="offset_l1"),
            ],
            [1.0, 0.1, 1.0, 1.0],
        )
    raise ValueError(f"unknown head kind {task_kind!r}")
