"""Knowledge distillation: a student learns from labels (hard targets) and a teacher (soft
targets).

:class:`Distiller` wraps a Keras 3 student. For classification the loss is
``(1 - alpha) * CE(labels, student) + alpha * T^2 * KL(softmax(t/T) || softmax(s/T))``
(Hinton et al. 2015); labels of ``-1`` mark unlabelled images that only the teacher labels. For
detection/pose students whose heads align with the teacher's (same architecture family, same
anchors/heatmap layout) ``soft_loss="mse"`` matches the raw head outputs instead, next to the
student's own task loss. Teacher targets come from ``y`` (cached on disk, see
:mod:`edgekit.compress.teacher`) or from a Keras ``teacher`` run on the batch.

:func:`load_classify_data` reads an image-folder dataset (``ROOT/<class>/<image>``) into
arrays with the runtime preprocessing, split exactly as ``edgekit eval`` splits it;
:func:`train_classifier` trains a student on it, with or without soft targets, so the
distilled and the hard-label runs share one code path and budget.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from edgekit.errors import DatasetError, UsageError

__all__ = [
    "ClassifyData",
    "Distiller",
    "accuracy",
    "load_classify_data",
    "logits_model",
    "teacher_targets",
    "train_classifier",
]


def logits_model(model: Any) -> Any:
    """The model up to its ``logits`` layer (zoo classifiers), sharing weights; the model itself
    when it has none."""
    try:
        layer = model.get_layer("logits")
    except ValueError:
        return model
    return keras.Model(model.inputs, layer.output, name=f"{model.name}_logits")


class Distiller(keras.Model):
    """Train ``student`` on hard and soft targets.

    - ``soft_loss="kl"`` (classification): the student's logits vs the teacher's logits at
      ``temperature``; ``y`` is ``labels`` (with a Keras ``teacher``) or ``(labels,
      teacher_logits)``. Labels < 0 contribute only the soft term.
    - ``soft_loss="mse"`` (detection/pose heads of the same family): mean squared error between
      each student output and the teacher's; ``y`` is ``(task_targets, teacher_outputs)`` and
      ``hard_loss(task_targets, student_outputs)`` gives the task loss.

    ``alpha`` weighs the soft term (0 = hard targets only). After ``fit``, ``student`` holds
    the trained weights (the Distiller only adds the loss).
    """

    def __init__(
        self,
        student: Any,
        teacher: Any | None = None,
        *,
        alpha: float = 0.7,
        temperature: float = 4.0,
        soft_loss: str = "kl",
        hard_loss: Callable[[Any, Any], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= alpha <= 1.0:
            raise UsageError(f"alpha must be in [0, 1], got {alpha}")
        if temperature <= 0:
            raise UsageError(f"temperature must be > 0, got {temperature}")
        if soft_loss not in ("kl", "mse"):
            raise UsageError(f"soft_loss must be 'kl' or 'mse', got {soft_loss!r}")
        if soft_loss == "mse" and hard_loss is None and alpha < 1.0:
            raise UsageError(
                "soft_loss='mse' needs hard_loss (the student's task loss) unless alpha=1"
            )
        self.student = student
        self.net = logits_model(student) if soft_loss == "kl" else student
        self.teacher = (
            logits_model(teacher) if teacher is not None and soft_loss == "kl" else teacher
        )
        if self.teacher is not None:
            self.teacher.trainable = False
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.soft_loss = soft_loss
        self.hard_loss = hard_loss
        self.hard_tracker = keras.metrics.Mean(name="hard")
        self.soft_tracker = keras.metrics.Mean(name="soft")

    def call(self, x: Any, training: bool = False) -> Any:
        return self.net(x, training=training)

    @property
    def metrics(self) -> list[Any]:
        return [*super().metrics, self.hard_tracker, self.soft_tracker]

    def _split_targets(self, x: Any, y: Any) -> tuple[Any, Any]:
        if self.teacher is not None:
            target = self.teacher(x, training=False)
            return y, keras.ops.stop_gradient(target) if not isinstance(
                target, (list, tuple)
            ) else [keras.ops.stop_gradient(t) for t in target]
        if not isinstance(y, (list, tuple)) or len(y) != 2:
            raise UsageError("without a Keras teacher, y must be (labels, teacher_outputs)")
        return y[0], y[1]

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        ops = keras.ops
        if self.alpha == 0.0 and self.soft_loss == "kl":  # hard targets only
            labels = y[0] if isinstance(y, (list, tuple)) else y
            hard, _ = self._kl_terms(labels, y_pred, y_pred)
            self.hard_tracker.update_state(hard)
            self.soft_tracker.update_state(0.0)
            return hard
        labels, soft_target = self._split_targets(x, y)
        if self.soft_loss == "kl":
            hard, soft = self._kl_terms(labels, soft_target, y_pred)
        else:
            preds = y_pred if isinstance(y_pred, (list, tuple)) else [y_pred]
            targets = soft_target if isinstance(soft_target, (list, tuple)) else [soft_target]
            soft = ops.mean(
                ops.stack(
                    [
                        ops.mean(ops.square(ops.cast(t, "float32") - p))
                        for p, t in zip(preds, targets, strict=True)
                    ]
                )
            )
            hard = self.hard_loss(labels, y_pred) if self.hard_loss is not None else ops.zeros(())
        self.hard_tracker.update_state(hard)
        self.soft_tracker.update_state(soft)
        return (1.0 - self.alpha) * hard + self.alpha * soft

    def _kl_terms(self, labels: Any, teacher_logits: Any, student_logits: Any) -> tuple[Any, Any]:
        ops = keras.ops
        t = self.temperature
        labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
        mask = ops.cast(labels >= 0, "float32")
        safe = ops.maximum(labels, 0)
        ce = keras.losses.sparse_categorical_crossentropy(safe, student_logits, from_logits=True)
        hard = ops.sum(ce * mask) / ops.maximum(ops.sum(mask), 1.0)
        p_t = ops.softmax(ops.cast(teacher_logits, "float32") / t, axis=-1)
        log_p_s = ops.log_softmax(student_logits / t, axis=-1)
        log_p_t = ops.log(ops.clip(p_t, 1e-8, 1.0))
        kl = ops.sum(p_t * (log_p_t - log_p_s), axis=-1)
        return hard, ops.mean(kl) * (t * t)


# --- classification data ---------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifyData:
    """Preprocessed images of one split: ``x`` (N, H, W, 3) float32, ``y`` (N,) class ids,
    ``paths`` (N,) and ``flipped`` (N,) bool (horizontal-flip copies when ``flip`` was on)."""

    x: np.ndarray
    y: np.ndarray
    paths: tuple[Path, ...]
    flipped: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.y.shape[0])


def load_classify_data(
    root: str | os.PathLike[str],
    spec: Any,
    *,
    split: str = "train",
    val_fraction: float = 0.2,
    seed: int = 0,
    flip: bool = False,
    max_images: int | None = None,
) -> ClassifyData:
    """An image-folder dataset as arrays, preprocessed as ``spec`` says (the runtime's resize
    and normalization), split like :func:`edgekit.eval.evaluate_model` splits it."""
    from edgekit.data.images import read_rgb
    from edgekit.data.load import load_dataset
    from edgekit.export.representative import float_preprocessor

    ds = load_dataset(
        root, "folder", split=split, val_fraction=val_fraction, seed=seed, max_images=max_images
    )
    prep = float_preprocessor(spec)
    xs, ys, paths, flips = [], [], [], []
    for rec in ds.images:
        img = read_rgb(rec.path)
        for f in (False, True) if flip else (False,):
            tensor, _ = prep(np.ascontiguousarray(img[:, ::-1]) if f else img)
            xs.append(tensor[0])
            ys.append(int(rec.class_ids[0]) if rec.num_objects else -1)
            paths.append(rec.path)
            flips.append(f)
    if not xs:
        raise DatasetError(f"{root}: no images in the {split} split")
    return ClassifyData(
        np.stack(xs).astype(np.float32),
        np.asarray(ys, np.int64),
        tuple(paths),
        np.asarray(flips, bool),
        tuple(ds.class_names),
    )


def teacher_targets(
    teacher: Any,
    data: ClassifyData,
    cache: Any,
    probe: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Teacher logits for every row of ``data`` (flipped rows use the mirrored image), cached;
    mapped through ``probe`` when the teacher's classes differ from the student's."""
    out = np.stack(
        [
            cache.get(teacher, p, "flip" if f else "")
            for p, f in zip(data.paths, data.flipped, strict=True)
        ]
    )
    return probe(out) if probe is not None else out


def train_classifier(
    student: Any,
    data: ClassifyData,
    *,
    teacher_logits: np.ndarray | None = None,
    teacher: Any | None = None,
    alpha: float = 0.7,
    temperature: float = 4.0,
    epochs: int = 10,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    seed: int = 0,
    callbacks: Sequence[Any] = (),
    bn_momentum: float | None = 0.9,
    verbose: int = 0,
) -> dict[str, list[float]]:
    """Train ``student`` in place: hard targets only when no teacher is given (``alpha`` is then
    0), otherwise distillation from ``teacher_logits`` (cached) or a Keras ``teacher``.

    ``bn_momentum`` (default 0.9) replaces the BatchNorm momentum: with the zoo's 0.99 a run
    of a few hundred steps leaves the moving statistics far from the trained weights' and the
    model collapses at inference. Returns the Keras history."""
    keras.utils.set_random_seed(seed)
    if bn_momentum is not None:
        for layer in student.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = float(bn_momentum)
    distill = teacher_logits is not None or teacher is not None
    model = Distiller(student, teacher, alpha=alpha if distill else 0.0, temperature=temperature)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    if teacher_logits is not None:
        if len(teacher_logits) != len(data):
            raise UsageError(f"{len(teacher_logits)} teacher outputs for {len(data)} images")
        y = (data.y, teacher_logits.astype(np.float32))
    elif teacher is not None:
        y = data.y
    else:
        num = int(student.outputs[0].shape[-1])
        y = (data.y, np.zeros((len(data), num), np.float32))
    hist = model.fit(
        data.x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        callbacks=list(callbacks),
        verbose=verbose,
    )
    return {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def accuracy(model: Any, data: ClassifyData) -> float:
    """Top-1 accuracy of a Keras classifier on ``data`` (labelled rows only)."""
    probs = np.asarray(model.predict(data.x, batch_size=64, verbose=0))
    sel = data.y >= 0
    return float((probs[sel].argmax(-1) == data.y[sel]).mean())
