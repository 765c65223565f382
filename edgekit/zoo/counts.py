"""Parameter and multiply-accumulate counts, computed analytically from layer shapes.

MACs count the Conv2D, DepthwiseConv2D and Dense layers (what dominates a mobile net's cost);
BatchNorm folds into the convolutions at export, and activations, additions, pooling and the
decode tails are ignored. Counts are per image (batch 1). Works on Keras 3 and tf-keras models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["ModelStats", "count_macs", "count_params", "layer_macs", "model_stats"]


@dataclass(frozen=True, slots=True)
class ModelStats:
    params: int
    trainable_params: int
    macs: int


def _shape(tensor_or_shape: Any) -> tuple[int, ...]:
    shape = getattr(tensor_or_shape, "shape", tensor_or_shape)
    return tuple(int(d) if d is not None else 1 for d in shape)


def _io_shapes(layer: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return _shape(layer.input), _shape(layer.output)


def layer_macs(layer: Any) -> int:
    """MACs of one layer for one image; 0 for layers that are not Conv2D/DepthwiseConv2D/Dense."""
    kind = type(layer).__name__
    if kind not in ("Conv2D", "DepthwiseConv2D", "Dense"):
        return 0
    in_shape, out_shape = _io_shapes(layer)
    if kind == "Dense":
        positions = math.prod(out_shape[1:-1])
        return positions * in_shape[-1] * out_shape[-1]
    kh, kw = layer.kernel_size
    out_positions = out_shape[1] * out_shape[2]
    if kind == "DepthwiseConv2D":
        return out_positions * kh * kw * out_shape[-1]
    groups = int(getattr(layer, "groups", 1) or 1)
    return out_positions * kh * kw * (in_shape[-1] // groups) * out_shape[-1]


def _layers(model: Any) -> list[Any]:
    out = []
    for layer in model.layers:
        if hasattr(layer, "layers") and type(layer).__name__ in (
            "Functional",
            "Model",
            "Sequential",
        ):
            out.extend(_layers(layer))
        else:
            out.append(layer)
    return out


def count_macs(model: Any) -> int:
    """Total multiply-accumulates of ``model`` for one image."""
    return sum(layer_macs(layer) for layer in _layers(model))


def count_params(model: Any, trainable_only: bool = False) -> int:
    weights = model.trainable_weights if trainable_only else model.weights
    return int(sum(math.prod(int(d) for d in w.shape) for w in weights))


def model_stats(model: Any) -> ModelStats:
    return ModelStats(
        count_params(model), count_params(model, trainable_only=True), count_macs(model)
    )
