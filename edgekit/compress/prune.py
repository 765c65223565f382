"""Magnitude (unstructured) pruning through TensorFlow Model Optimization, and the tf-keras bridge.

TFMOT 0.8.1 only accepts tf-keras models, so a Keras 3 model goes through a *twin*: the same
functional graph rebuilt with ``tf_keras`` layers (:func:`to_tf_keras`, or a zoo builder with
``km=tf_keras``), weights copied with ``get_weights``/``set_weights`` and the two checked to give
the same outputs. Pruning and QAT happen on the twin; :func:`copy_weights_back` returns the
(stripped) weights to the Keras 3 model that export uses. Importing TFMOT sets
``TF_USE_LEGACY_KERAS=1`` for the process; everything here imports it lazily and only this
package does.

:func:`magnitude_prune` returns the wrapped model *with* the callbacks it needs
(``UpdatePruningStep``; ``PruningSummaries`` with ``log_dir``), and sets the schedule's
``frequency`` from the step count so that short runs reach their target sparsity.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.compress.structured import layer_inputs
from edgekit.errors import DependencyMissing, UsageError

__all__ = [
    "PruneSetup",
    "copy_weights_back",
    "magnitude_prune",
    "prune_finetune",
    "sparsity_report",
    "tfmot",
    "to_tf_keras",
    "verify_twins",
]

_MULTI_INPUT = frozenset(
    {"Add", "Multiply", "Concatenate", "Subtract", "Average", "Maximum", "Minimum"}
)
_DROP_KEYS = {"dtype", "kernel_initializer", "bias_initializer", "depthwise_initializer",
              "beta_initializer", "gamma_initializer", "moving_mean_initializer",
              "moving_variance_initializer", "kernel_regularizer", "bias_regularizer",
              "depthwise_regularizer", "activity_regularizer", "beta_regularizer",
              "gamma_regularizer", "kernel_constraint", "bias_constraint",
              "depthwise_constraint", "beta_constraint", "gamma_constraint",
              "lora_rank", "lora_alpha", "quantization_config", "synchronized"}  # fmt: skip


def tfmot() -> Any:
    """``tensorflow_model_optimization`` (sets ``TF_USE_LEGACY_KERAS=1`` for the process)."""
    try:
        import tensorflow_model_optimization as mot
    except ImportError:
        raise DependencyMissing(
            "pruning and QAT need tensorflow-model-optimization and tf-keras",
            hint="pip install 'edgekit[train]'",
        ) from None
    return mot


def _tf_keras() -> Any:
    tfmot()
    import tf_keras

    return tf_keras


def _tf_layer(tfk: Any, layer: Any) -> Any:
    cls_name = type(layer).__name__
    cls = getattr(tfk.layers, cls_name, None)
    if cls is None:
        raise UsageError(
            f"layer {layer.name!r} ({cls_name}) has no tf-keras equivalent; "
            "pruning/QAT support the zoo's Conv/Depthwise/BN/ReLU/Add/Dense layers"
        )
    cfg = {k: v for k, v in layer.get_config().items() if k not in _DROP_KEYS}
    params = inspect.signature(cls.__init__).parameters
    allowed = set(params) | {"name", "trainable"}
    cfg = {k: v for k, v in cfg.items() if k in allowed}
    for k, v in list(cfg.items()):
        if isinstance(v, dict) and "class_name" in v:  # serialized objects: keep the default
            del cfg[k]
    return cls(**cfg)


def to_tf_keras(model: Any, *, check: bool = True) -> Any:
    """Rebuild a Keras 3 functional ``model`` with tf-keras layers, copy its weights, and (with
    ``check``) verify both give the same outputs on random input."""
    tfk = _tf_keras()
    tensors: dict[int, Any] = {}
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            shape = (
                tuple(layer.batch_shape[1:])
                if hasattr(layer, "batch_shape")
                else tuple(layer.output.shape[1:])
            )
            t = tfk.Input(shape=shape, name=layer.name)
            tensors[id(layer.output)] = t
            continue
        inputs = [tensors[id(t)] for t in layer_inputs(layer, "translate")]
        new = _tf_layer(tfk, layer)
        arg = inputs if type(layer).__name__ in _MULTI_INPUT or len(inputs) > 1 else inputs[0]
        out = new(arg)
        tensors[id(layer.output)] = out
    twin = tfk.Model(
        [tensors[id(t)] for t in model.inputs],
        [tensors[id(t)] for t in model.outputs],
        name=model.name,
    )
    if len(model.outputs) == 1:
        twin = tfk.Model(twin.inputs, twin.outputs[0], name=model.name)
    for layer in model.layers:
        w = layer.get_weights()
        if w:
            twin.get_layer(layer.name).set_weights(w)
    if check:
        verify_twins(model, twin)
    return twin


def verify_twins(
    a: Any, b: Any, *, atol: float = 1e-4, seed: int = 0, layerwise: bool = True
) -> float:
    """Max abs difference between a Keras 3 model and its tf-keras twin on one random input,
    layer by layer (every same-named layer's output) or, with ``layerwise=False``, at the
    outputs. ``UsageError`` naming the first layer that differs by more than ``atol``."""
    import keras

    shape = [1, *[int(v) for v in a.inputs[0].shape[1:]]]
    x = np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)
    if layerwise:
        names = [layer.name for layer in a.layers[1:] if _has_layer(b, layer.name)]
        probe_a = keras.Model(a.inputs, [a.get_layer(n).output for n in names])
        probe_b = type(b)(b.inputs, [b.get_layer(n).output for n in names])
    else:
        names = [t.name for t in a.outputs]
        probe_a, probe_b = a, b
    ya, yb = probe_a(x, training=False), probe_b(x, training=False)
    ya = ya if isinstance(ya, (list, tuple)) else [ya]
    yb = yb if isinstance(yb, (list, tuple)) else [yb]
    worst = 0.0
    for name, p, q in zip(names, ya, yb, strict=True):
        diff = float(np.max(np.abs(np.asarray(p) - np.asarray(q))))
        scale = max(1.0, float(np.max(np.abs(np.asarray(p)))))
        if diff > atol * scale:
            raise UsageError(
                f"Keras 3 and tf-keras copies of {a.name!r} differ at layer {name!r} by {diff:g}"
            )
        worst = max(worst, diff)
    return worst


def _has_layer(model: Any, name: str) -> bool:
    try:
        model.get_layer(name)
    except ValueError:
        return False
    return True


def copy_weights_back(tf_model: Any, model: Any) -> Any:
    """Copy a (stripped) tf-keras twin's weights into the Keras 3 ``model`` by layer name."""
    for layer in model.layers:
        w = layer.get_weights()
        if not w:
            continue
        src = tf_model.get_layer(layer.name).get_weights()
        if [x.shape for x in src] != [x.shape for x in w]:
            raise UsageError(
                f"layer {layer.name!r}: twin weights {[x.shape for x in src]} != {[x.shape for x in w]}"
            )
        layer.set_weights(src)
    return model


@dataclass
class PruneSetup:
    """A model wrapped for pruning and the callbacks its training must use."""

    model: Any
    callbacks: list[Any]
    schedule: Any
    end_step: int


def magnitude_prune(
    tf_model: Any,
    target_sparsity: float,
    *,
    end_step: int,
    begin_step: int = 0,
    schedule: str = "polynomial",
    initial_sparsity: float = 0.0,
    frequency: int | None = None,
    log_dir: str | None = None,
    layers: Callable[[Any], bool] | None = None,
) -> PruneSetup:
    """Wrap a tf-keras model for magnitude pruning to ``target_sparsity`` by ``end_step``.

    ``frequency`` defaults to about a tenth of the pruning steps (at least 1), never TFMOT's 100
    which would leave a short run unpruned. ``layers(layer) -> bool`` limits pruning to some
    layers (default: every layer TFMOT prunes: Conv2D and Dense kernels; TFMOT 0.8.1 leaves
    depthwise kernels dense, which are a few percent of a MobileNet's weights).
    """
    mot = tfmot()
    if not 0.0 < target_sparsity < 1.0:
        raise UsageError(f"target sparsity must be in (0, 1), got {target_sparsity}")
    if end_step <= begin_step:
        raise UsageError(f"end_step ({end_step}) must be after begin_step ({begin_step})")
    span = end_step - begin_step
    freq = frequency or max(1, span // 10)
    s = mot.sparsity.keras
    if schedule == "polynomial":
        sched = s.PolynomialDecay(
            initial_sparsity, target_sparsity, begin_step, end_step, frequency=freq
        )
    elif schedule == "constant":
        sched = s.ConstantSparsity(target_sparsity, begin_step, end_step=end_step, frequency=freq)
    else:
        raise UsageError(f"schedule must be 'polynomial' or 'constant', got {schedule!r}")
    if layers is None:
        wrapped = s.prune_low_magnitude(tf_model, pruning_schedule=sched)
    else:
        tfk = _tf_keras()

        def clone(layer: Any) -> Any:
            return s.prune_low_magnitude(layer, pruning_schedule=sched) if layers(layer) else layer

        wrapped = tfk.models.clone_model(tf_model, clone_function=clone)  # reuses the layers
    callbacks = [s.UpdatePruningStep()]
    if log_dir:
        callbacks.append(s.PruningSummaries(log_dir=log_dir))
    return PruneSetup(wrapped, callbacks, sched, end_step)


def sparsity_report(model: Any) -> dict[str, float]:
    """Fraction of exactly-zero weights per layer kernel (Conv2D/Depthwise/Dense) and over the
    prunable Conv2D/Dense kernels (key ``"total"``; depthwise kernels are reported, not counted,
    since TFMOT does not prune them)."""
    out: dict[str, float] = {}
    zeros = total = 0
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        kernel = getattr(inner, "depthwise_kernel", None)
        if kernel is None:
            kernel = getattr(inner, "kernel", None)
        if kernel is None:
            continue
        k = np.asarray(kernel)
        z = int((k == 0).sum())
        out[inner.name] = z / k.size
        if "Depthwise" not in type(inner).__name__:
            zeros += z
            total += k.size
    out["total"] = zeros / total if total else 0.0
    return out


def prune_finetune(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    target_sparsity: float,
    *,
    epochs: int = 2,
    batch_size: int = 32,
    learning_rate: float = 1e-4,
    schedule: str = "polynomial",
    seed: int = 0,
    loss: str = "sparse_categorical_crossentropy",
    extra_callbacks: Sequence[Any] = (),
) -> tuple[Any, dict[str, float]]:
    """Prune a Keras 3 classifier to ``target_sparsity`` while fine-tuning on ``(x, y)``.

    Twin -> wrap -> fit (reaching the target at 2/3 of the steps, then holding it) -> strip ->
    copy back. Returns the Keras 3 model (pruned weights) and :func:`sparsity_report`.
    """
    tfk = _tf_keras()
    import tensorflow as tf

    tf.random.set_seed(seed)
    twin = to_tf_keras(model)
    steps = int(np.ceil(len(x) / batch_size)) * epochs
    setup = magnitude_prune(
        twin, target_sparsity, end_step=max(1, (2 * steps) // 3), schedule=schedule
    )
    setup.model.compile(optimizer=tfk.optimizers.Adam(learning_rate), loss=loss)
    setup.model.fit(
        x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0,
        callbacks=[*setup.callbacks, *extra_callbacks],
    )  # fmt: skip
    stripped = tfmot().sparsity.keras.strip_pruning(setup.model)
    copy_weights_back(stripped, model)
    return model, sparsity_report(model)
