"""Structured (channel) pruning: a genuinely thinner Keras model, faster on any runtime.

The prunable convolutions (:func:`prunable_layers`) are those whose output channels are private:
followed through the layers that keep channels apart (BatchNorm, activations, depthwise
convolutions, padding, pooling, resizing), they reach only the input of other convolutions or
dense layers, never an ``Add``/``Concatenate``/``Reshape``, another multi-input layer or a model
output. In a MobileNetV2 that is the expansion convs of the inverted residual blocks (plus the
stem and SSD extra layers); in a MobileNetV1 or an SSD built on one (``edgekit import`` of the
TF1 SSD) every pointwise conv of the backbone and the extra layers. For each one the output
channels with the smallest L1 norm are dropped (rounded to a multiple of ``divisor``); the
removal then follows the graph: the conv's BN and activation, the depthwise conv (its channels
follow its input) and its BN, until a conv or dense layer consumes the channels (its input axis
is sliced). A pruned tensor that reaches an ``Add``/``Concatenate``/``Reshape`` is refused rather
than mis-sliced (only possible with an explicit ``layers`` list).

With ``images`` (a few model inputs), both choices use the data instead: a channel's importance
is the spread of its activation where a convolution reads it (standard deviation) times that
convolution's weights on it (L1), and the mean activation of every dropped channel is folded
into the reading convolution's bias, so what the channel contributed on average survives its
removal. Networks whose BatchNorm is folded into the convolutions (every imported TFLite
model) have no normalisation left to absorb the loss, and lose far less this way.

The thin model is rebuilt with ``keras.models.clone_model`` and a ``clone_function`` that gives
each expansion conv its new filter count; weights are sliced across.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from edgekit.errors import UsageError

__all__ = [
    "ChannelPlan",
    "expansion_layers",
    "param_count",
    "plan_channels",
    "prunable_layers",
    "prune_channels",
]

_PASS = frozenset(
    {"ReLU", "Activation", "Dropout", "ZeroPadding2D", "Rescaling", "Softmax", "LeakyReLU",
     "GlobalAveragePooling2D", "AveragePooling2D", "MaxPooling2D", "Resizing", "UpSampling2D",
     "ResizeImages", "Identity"}
)  # fmt: skip


def expansion_layers(model: Any) -> list[str]:
    """Names of the 1x1 expansion convs of inverted-residual blocks (the safe pruning set)."""
    return [
        layer.name
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D)
        and not isinstance(layer, keras.layers.DepthwiseConv2D)
        and layer.name.endswith("_expand")
    ]


def _is_conv(layer: Any) -> bool:
    return isinstance(layer, keras.layers.Conv2D) and not isinstance(
        layer, keras.layers.DepthwiseConv2D
    )


def _consumers(model: Any) -> dict[str, list[Any]]:
    """Layer name -> the layers that take its output (model outputs count as ``None``)."""
    out: dict[str, list[Any]] = {layer.name: [] for layer in model.layers}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for t in node.input_tensors:
                out[t._keras_history.operation.name].append(layer)
    for t in model.outputs:
        out[t._keras_history.operation.name].append(None)
    return out


def _readers(model: Any, name: str, consumers: dict[str, list[Any]]) -> list[Any] | None:
    """The convs/dense layers that read conv ``name``'s channels (through channel-wise
    layers), or None when the channels reach anything else (module docstring)."""
    keeps_channels = (keras.layers.DepthwiseConv2D, keras.layers.BatchNormalization)
    stack, seen, readers = list(consumers[name]), set(), []
    while stack:
        c = stack.pop()
        if c is None or len(c._inbound_nodes) != 1:
            return None
        if c.name in seen:
            continue
        seen.add(c.name)
        if _is_conv(c) or isinstance(c, keras.layers.Dense):
            readers.append(c)
            continue
        if isinstance(c, keeps_channels) or type(c).__name__ in _PASS:
            if len(c._inbound_nodes[0].input_tensors) != 1:
                return None
            stack.extend(consumers[c.name])
            continue
        return None
    return readers


def prunable_layers(model: Any) -> list[str]:
    """Convs whose output channels only reach other convs/dense layers (module docstring)."""
    consumers = _consumers(model)
    return [
        layer.name
        for layer in model.layers
        if _is_conv(layer) and _readers(model, layer.name, consumers) is not None
    ]


def _reader_stats(model: Any, readers: list[Any], images: np.ndarray) -> dict[str, tuple]:
    """Per reading layer: (mean, std) of each input channel over ``images`` (and positions)."""
    probe = keras.Model(model.inputs, [r.input for r in readers])
    outs = probe.predict(np.asarray(images, np.float32), batch_size=8, verbose=0)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    stats = {}
    for r, x in zip(readers, outs, strict=True):
        flat = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
        stats[r.name] = (flat.mean(0), flat.std(0))
    return stats


def _weight_l1(layer: Any) -> np.ndarray:
    """L1 norm of a reading layer's weights per input channel."""
    kernel = np.asarray(layer.kernel)
    return np.abs(np.moveaxis(kernel, -2, 0)).reshape(kernel.shape[-2], -1).sum(1)


@dataclass(frozen=True)
class ChannelPlan:
    """Kept output channels per pruned conv (sorted indices) and the resulting counts."""

    keep: dict[str, np.ndarray]
    before: dict[str, int]
    after: dict[str, int] = field(default_factory=dict)


def _round(n: float, divisor: int, minimum: int) -> int:
    return max(minimum, round(n / divisor) * divisor)


def plan_channels(
    model: Any,
    ratio: float,
    *,
    divisor: int = 8,
    layers: list[str] | None = None,
    min_channels: int = 8,
    images: np.ndarray | None = None,
) -> ChannelPlan:
    """Which channels to keep: drop ``ratio`` of each selected conv's output channels (default:
    every one of :func:`prunable_layers`), least important first: smallest L1 norm of the
    kernel (over its spatial and input axes), or with ``images`` the smallest activation spread
    times reading weights (module docstring)."""
    if not 0.0 <= ratio < 1.0:
        raise UsageError(f"channel pruning ratio must be in [0, 1), got {ratio}")
    names = prunable_layers(model) if layers is None else layers
    if not names:
        raise UsageError(
            f"{model.name}: no convolution has channels private to it (every one feeds an Add, "
            "a Concatenate, a Reshape or an output), so no channel can be pruned"
        )
    readers: dict[str, list[Any]] = {}
    stats: dict[str, tuple] = {}
    if images is not None:
        consumers = _consumers(model)
        readers = {name: _readers(model, name, consumers) or [] for name in names}
        unique = {r.name: r for rs in readers.values() for r in rs}
        stats = _reader_stats(model, list(unique.values()), images)
    keep, before, after = {}, {}, {}
    for name in names:
        kernel = np.asarray(model.get_layer(name).kernel)
        n = kernel.shape[-1]
        k = min(n, _round(n * (1.0 - ratio), divisor, min(min_channels, n)))
        if readers.get(name):
            norms = sum(stats[r.name][1] * _weight_l1(r) for r in readers[name])
        else:
            norms = np.abs(kernel).reshape(-1, n).sum(0)
        keep[name] = np.sort(np.argsort(-norms, kind="stable")[:k])
        before[name], after[name] = n, k
    return ChannelPlan(keep, before, after)


def layer_inputs(layer: Any, doing: str) -> list[Any]:
    """The input tensors of a functional model's layer that is called exactly once."""
    nodes = layer._inbound_nodes
    if len(nodes) != 1:
        raise UsageError(
            f"layer {layer.name!r} is shared or unused ({len(nodes)} calls); cannot {doing}"
        )
    return list(nodes[0].input_tensors)


def _propagate(
    model: Any, plan: ChannelPlan
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per layer: kept input channels (``ins``) and kept output channels (``outs``)."""
    tensor_keep: dict[int, np.ndarray | None] = {}
    ins: dict[str, np.ndarray] = {}
    outs: dict[str, np.ndarray] = {}
    for layer in model.layers:
        cls = type(layer).__name__
        if cls == "InputLayer":
            tensor_keep[id(layer.output)] = None
            continue
        in_keeps = [tensor_keep.get(id(t)) for t in layer_inputs(layer, "prune channels")]
        pruned_in = [k for k in in_keeps if k is not None]
        if pruned_in and len(in_keeps) > 1:
            raise UsageError(
                f"pruned channels reach {layer.name!r} ({cls}), which combines several tensors; "
                "only expansion channels of inverted residual blocks can be pruned"
            )
        k_in = pruned_in[0] if pruned_in else None
        if k_in is not None:
            ins[layer.name] = k_in
        if isinstance(layer, (keras.layers.DepthwiseConv2D, keras.layers.BatchNormalization)):
            k_out = k_in
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            k_out = plan.keep.get(layer.name)
        elif cls in _PASS:
            k_out = k_in
        elif k_in is not None:
            raise UsageError(
                f"pruned channels reach {layer.name!r} ({cls}), which cannot be sliced"
            )
        else:
            k_out = None
        if k_out is not None:
            outs[layer.name] = k_out
        tensor_keep[id(layer.output)] = k_out
    return ins, outs


def _slice(
    layer: Any,
    weights: list[np.ndarray],
    k_in: np.ndarray | None,
    k_out: np.ndarray | None,
    in_mean: np.ndarray | None = None,
) -> list[np.ndarray]:
    """``layer``'s weights without the dropped input/output channels; with ``in_mean`` (the
    mean of each input channel) a reading layer's bias takes over the dropped inputs' average."""
    if isinstance(layer, keras.layers.BatchNormalization):
        return [w[k_in] for w in weights] if k_in is not None else weights
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        if k_in is None:
            return weights
        out = [weights[0][:, :, k_in, :]]
        if len(weights) > 1:
            out.append(weights[1].reshape(-1, weights[0].shape[-1])[k_in].reshape(-1))
        return out
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
        kernel, bias = weights[0], weights[1] if len(weights) > 1 else None
        dropped = np.setdiff1d(np.arange(kernel.shape[-2]), k_in if k_in is not None else [])
        if k_in is not None and in_mean is not None and bias is not None and dropped.size:
            w = np.moveaxis(kernel, -2, 0)[dropped]  # (dropped, ..., out)
            bias = bias + np.tensordot(
                in_mean[dropped], w.reshape(len(dropped), -1, w.shape[-1]).sum(1), 1
            )
        if k_in is not None:
            kernel = kernel[..., k_in, :]
        if k_out is not None:
            kernel = kernel[..., k_out]
        out = [kernel]
        if bias is not None:
            out.append(bias[k_out] if k_out is not None else bias)
        return out
    return weights


def prune_channels(
    model: Any,
    ratio: float,
    *,
    divisor: int = 8,
    layers: list[str] | None = None,
    plan: ChannelPlan | None = None,
    images: np.ndarray | None = None,
) -> tuple[Any, ChannelPlan]:
    """A thinner copy of ``model`` without ``ratio`` of its prunable channels.

    Returns the new Keras 3 model (same layer names, sliced weights) and the plan. Fine-tune it
    afterwards. With ``images`` the channels are chosen from their activations and their mean
    contribution moves into the reading layers' biases (module docstring).
    """
    plan = plan or plan_channels(model, ratio, divisor=divisor, layers=layers, images=images)
    ins, outs = _propagate(model, plan)
    means: dict[str, np.ndarray] = {}
    if images is not None:
        readers = [model.get_layer(n) for n in ins if _is_conv(model.get_layer(n))
                   or isinstance(model.get_layer(n), keras.layers.Dense)]  # fmt: skip
        means = {n: m for n, (m, _) in _reader_stats(model, readers, images).items()}

    def clone(layer: Any) -> Any:
        cfg = layer.get_config()
        if layer.name in plan.keep:
            cfg["filters" if "filters" in cfg else "units"] = len(plan.keep[layer.name])
        return type(layer).from_config(cfg)

    thin = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        w = layer.get_weights()
        if w:
            thin.get_layer(layer.name).set_weights(
                _slice(layer, w, ins.get(layer.name), outs.get(layer.name), means.get(layer.name))
            )
    return thin, plan


def param_count(model: Any) -> int:
    """Number of parameters (trainable and not)."""
    return int(sum(int(np.prod(w.shape)) for w in model.weights))
