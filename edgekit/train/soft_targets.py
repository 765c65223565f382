"""Soft targets for SSD students: the teacher's per-anchor class scores, on the training batch.

Hard targets come from the labels (anchor matching, :mod:`edgekit.data.encode`); soft targets
come from a float ``ssd_raw`` teacher (e.g. what ``edgekit import`` makes of a TFLite SSD) run
on the same augmented batch, inside the input pipeline, so every crop, flip and mosaic the
student sees is also what the teacher scores.

Student and teacher may differ in input size: SSD anchors depend on the layer (scale, aspect
ratios) and the grid position only, so the teacher's class-logit map of each feature level,
``[B, g_t, g_t, n * C]``, is resampled bilinearly to the student's grid of that level and read
at the same anchor slots. The levels must agree in number and boxes per location (true for
the same anchor generator at any input size). The logits of the student's classes (matched
by label name) become probabilities at temperature ``T``: ``sigmoid(z / T)``.

The class loss (:class:`edgekit.train.losses.SSDClassLoss` with ``soft_weight``) adds, next to
the focal loss on the hard targets, a quality focal loss (Li et al. 2020, the sigmoid form of
Hinton's soft-target term) between ``sigmoid(s / T)`` and these probabilities, times ``T^2``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from edgekit.core.types import ModelSpec
from edgekit.errors import UsageError

__all__ = ["anchor_levels", "ssd_soft_target_fn"]


def anchor_levels(spec: ModelSpec) -> list[tuple[int, int, int]]:
    """``(grid_h, grid_w, boxes_per_location)`` per feature level of an ``ssd_raw`` spec."""
    from edgekit.core.anchors import num_anchors_per_location

    gen = spec.decoder_params.get("anchors")
    if not isinstance(gen, dict) or "feature_sizes" not in gen:
        raise UsageError(
            f"{spec.name or 'model'}: soft targets need anchors given by their generator "
            "(feature sizes), not an explicit list"
        )
    sizes = [(int(s[0]), int(s[1])) if isinstance(s, (list, tuple)) else (int(s), int(s))
             for s in gen["feature_sizes"]]  # fmt: skip
    keys = ("min_scale", "max_scale", "aspect_ratios", "interpolated_scale_aspect_ratio",
            "reduce_boxes_in_lowest_layer")  # fmt: skip
    per = num_anchors_per_location(len(sizes), **{k: gen[k] for k in keys if k in gen})
    return [(h, w, n) for (h, w), n in zip(sizes, per, strict=True)]


def _columns(teacher: ModelSpec, labels: Sequence[str]) -> list[int]:
    """Teacher logit columns (background = 0) of the student's classes, by name."""
    have = list(teacher.labels)
    missing = [lab for lab in labels if lab not in have]
    if missing:
        raise UsageError(
            f"the teacher {teacher.name!r} has no class {', '.join(missing)} to give soft targets for"
        )
    return [have.index(lab) + 1 for lab in labels]


def ssd_soft_target_fn(
    teacher: Any,
    teacher_spec: ModelSpec,
    student_spec: ModelSpec,
    labels: Sequence[str],
    *,
    temperature: float = 2.0,
) -> Callable[[Any, Any], Any]:
    """A ``tf.data`` map function for batches ``(images, (box_targets, class_targets))``:
    appends the teacher's soft class probabilities to ``class_targets`` (``[B, A, 1]`` ->
    ``[B, A, 1 + C]``). ``images`` are normalized for the student; ``labels`` are the
    student's class names."""
    import tensorflow as tf

    if temperature <= 0:
        raise UsageError(f"temperature must be > 0, got {temperature}")
    t_levels, s_levels = anchor_levels(teacher_spec), anchor_levels(student_spec)
    if [n for *_, n in t_levels] != [n for *_, n in s_levels]:
        raise UsageError(
            "teacher and student SSDs differ in feature levels or boxes per location "
            f"({[n for *_, n in t_levels]} vs {[n for *_, n in s_levels]}): no anchor-to-anchor "
            "soft targets"
        )
    cols = _columns(teacher_spec, labels)
    c = len(cols)
    s_mean, s_std = student_spec.normalization
    t_mean, t_std = teacher_spec.normalization
    t_hw = tuple(int(v) for v in teacher_spec.input_size)
    counts = [h * w * n for h, w, n in t_levels]
    teacher.trainable = False
    t = float(temperature)

    @tf.function(reduce_retracing=True)
    def soft(images: Any) -> Any:
        x = images * s_std + s_mean
        if tuple(x.shape[1:3]) != t_hw:
            x = tf.image.resize(x, t_hw, method="bilinear")
        _, logits = teacher((x - t_mean) / t_std, training=False)
        logits = tf.gather(logits, cols, axis=-1)
        parts = tf.split(logits, counts, axis=1)
        out = []
        for part, (th, tw, n), (sh, sw, _) in zip(parts, t_levels, s_levels, strict=True):
            grid = tf.reshape(part, [-1, th, tw, n * c])
            if (th, tw) != (sh, sw):
                grid = tf.image.resize(grid, (sh, sw), method="bilinear")
            out.append(tf.reshape(grid, [-1, sh * sw * n, c]))
        return tf.sigmoid(tf.concat(out, axis=1) / t)

    def add(images: Any, y: Any) -> Any:
        boxes, classes = y
        return images, (boxes, tf.concat([classes, soft(images)], axis=-1))

    return add
