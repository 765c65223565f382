"""TFLite graph -> float Keras 3 functional model, one op at a time.

The translation behind ``edgekit import``: every operator that the requested output tensors
depend on becomes a Keras layer with its weights dequantized (per tensor or per channel) and
laid out the Keras way. Quantization itself disappears: ``QUANTIZE``/``DEQUANTIZE`` and the
input ``CAST`` become identities. An integer model also clamps its activations through their
quantized range; where a tensor's range starts exactly at 0 (a folded ReLU) the float model gets
that ReLU back, and a ReLU6 where the range also ends at 6. Other ranges are not clamped: the
float model may exceed what the integer one saturates at, which counts as quantization error.

``RESHAPE`` keeps its second dimension free (``-1``) and ``RESIZE_*`` keeps its scale factor,
so the model can be rebuilt at another input size (:func:`edgekit.zoo.checkpoint.resize_model`)
when it is a detector whose heads flatten a feature map.

An operator outside :data:`SUPPORTED_OPS` stops the translation with an
:class:`~edgekit.errors.UnsupportedModelError` naming it (index, op, the tensor it produces).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from edgekit.core.flatbuffer import OperatorInfo, SubgraphInfo, TensorInfo, TFLiteGraph
from edgekit.errors import UnsupportedModelError

__all__ = ["SUPPORTED_OPS", "ConstantOp", "ResizeImages", "producers", "translate_graph"]

_ACTIVATIONS = {"NONE": None, "RELU": "relu", "RELU6": "relu6", "TANH": "tanh"}
_OP_WORDS = frozenset(
    {"Relu", "Relu6", "BiasAdd", "Conv2D", "depthwise", "FusedBatchNormV3", "FusedBatchNorm",
     "BatchNorm", "add", "AddV2", "Sigmoid", "ResizeBilinear", "ResizeNearestNeighbor", "resize",
     "separable_conv2d", "MatMul", "Mean", "Softmax", "mul", "sub", "Identity", "act_quant",
     "FakeQuantWithMinMaxVars"}
)  # fmt: skip


@keras.saving.register_keras_serializable(package="edgekit")
class ConstantOp(keras.layers.Layer):
    """``x <op> c`` (or ``c <op> x`` with ``reverse``) for a small constant ``c`` that
    broadcasts against ``x``; ``op`` is add, sub, mul, div, maximum or minimum."""

    _OPS = ("add", "sub", "mul", "div", "maximum", "minimum")

    def __init__(self, op: str, value: Any, reverse: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if op not in self._OPS:
            raise ValueError(f"ConstantOp: op must be one of {self._OPS}, got {op!r}")
        self.op = op
        self.value = np.asarray(value, np.float32)
        self.reverse = bool(reverse)

    def call(self, x: Any) -> Any:
        ops = keras.ops
        c = ops.convert_to_tensor(self.value)
        a, b = (c, x) if self.reverse else (x, c)
        fn = {"add": ops.add, "sub": ops.subtract, "mul": ops.multiply, "div": ops.divide,
              "maximum": ops.maximum, "minimum": ops.minimum}[self.op]  # fmt: skip
        return fn(a, b)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "op": self.op,
            "value": self.value.tolist(),
            "reverse": self.reverse,
        }


@keras.saving.register_keras_serializable(package="edgekit")
class ResizeImages(keras.layers.Layer):
    """Bilinear or nearest resize by an integer ``factor`` (or to a fixed ``size``) with
    TFLite's ``align_corners`` / ``half_pixel_centers`` semantics (converts back to the same
    ``RESIZE_*`` op)."""

    def __init__(
        self,
        method: str = "bilinear",
        factor: int | None = None,
        size: Sequence[int] | None = None,
        align_corners: bool = False,
        half_pixel_centers: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if method not in ("bilinear", "nearest"):
            raise ValueError(f"ResizeImages: method must be bilinear or nearest, got {method!r}")
        if (factor is None) == (size is None):
            raise ValueError("ResizeImages: give exactly one of factor and size")
        self.method = method
        self.factor = None if factor is None else int(factor)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.align_corners = bool(align_corners)
        self.half_pixel_centers = bool(half_pixel_centers)

    def _out_hw(self, h: Any, w: Any) -> tuple[Any, Any]:
        if self.size is not None:
            return self.size
        return h * self.factor, w * self.factor

    def call(self, x: Any) -> Any:
        import tensorflow as tf

        h, w = self._out_hw(tf.shape(x)[1], tf.shape(x)[2])
        size = tf.stack([h, w])
        fn = (
            tf.raw_ops.ResizeBilinear
            if self.method == "bilinear"
            else tf.raw_ops.ResizeNearestNeighbor
        )
        return fn(
            images=x,
            size=size,
            align_corners=self.align_corners,
            half_pixel_centers=self.half_pixel_centers,
        )

    def compute_output_shape(self, input_shape: Any) -> Any:
        b, h, w, c = input_shape
        if self.size is not None:
            return (b, *self.size, c)
        return (
            b,
            None if h is None else h * self.factor,
            None if w is None else w * self.factor,
            c,
        )

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "method": self.method,
            "factor": self.factor,
            "size": None if self.size is None else list(self.size),
            "align_corners": self.align_corners,
            "half_pixel_centers": self.half_pixel_centers,
        }


# --------------------------------------------------------------------------- helpers


def producers(sub: SubgraphInfo) -> dict[int, OperatorInfo]:
    """Tensor index -> the operator that writes it."""
    return {t: op for op in sub.operators for t in op.outputs if t >= 0}


def _dequantized(graph: TFLiteGraph, t: TensorInfo) -> np.ndarray | None:
    """A constant tensor's real values (float32), or None for an activation."""
    raw = graph.constant(t)
    if raw is None:
        return None
    arr = np.asarray(raw)
    q = t.quantization
    if q is None or arr.dtype.kind == "f":
        return arr.astype(np.float32)
    scale = np.asarray(q.scale, np.float64)
    zero = np.asarray(q.zero_point or (0,) * scale.size, np.float64)
    if scale.size > 1 and arr.ndim:
        shape = [1] * arr.ndim
        shape[q.quantized_dimension] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((arr.astype(np.float64) - zero) * scale).astype(np.float32)


def _range_activation(t: TensorInfo) -> str | None:
    """The ReLU/ReLU6 an integer tensor's quantized range implies (see the module docstring)."""
    q = t.quantization
    if not t.is_quantized or q is None or len(q.scale) != 1:
        return None
    info = np.iinfo(np.dtype(t.dtype))
    zero, scale = int(q.zero_point[0]) if q.zero_point else 0, float(q.scale[0])
    if zero != info.min:
        return None
    top = (info.max - zero) * scale
    return "relu6" if abs(top - 6.0) <= 2 * scale else "relu"


def layer_name(tensor_name: str) -> str:
    """A readable Keras layer name from a TFLite tensor name (``a/b/conv_3/Relu6`` ->
    ``b_conv_3``)."""
    parts = [p for p in tensor_name.split(";")[0].split("/") if p]
    while len(parts) > 1 and re.sub(r"\d+$", "", parts[-1]) in _OP_WORDS:
        parts.pop()
    tail = parts[-2:] if parts else ["op"]
    name = "_".join(tail)
    name = re.sub(r"_(relu6?|BN|bn)$", "", name)
    name = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "op"
    return name if name[0].isalpha() else f"t_{name}"


class _Builder:
    """Keras tensors of the graph's tensors, built op by op."""

    def __init__(self, graph: TFLiteGraph, names: dict[int, str]) -> None:
        self.graph = graph
        self.sub = graph.main
        self.names = dict(names)
        self.values: dict[int, Any] = {}
        self.used: set[str] = set()

    def tensor(self, index: int) -> TensorInfo:
        return self.sub.tensors[index]

    def const(self, index: int) -> np.ndarray | None:
        return _dequantized(self.graph, self.tensor(index)) if index >= 0 else None

    def implied_activation(self, op: OperatorInfo) -> str | None:
        """The op's fused activation, else the one its output range implies (None: linear)."""
        fused = str(op.options.get("fused_activation") or "NONE")
        if fused not in _ACTIVATIONS:
            raise self.unsupported(op, f"fused activation {fused}")
        return _ACTIVATIONS[fused] or _range_activation(self.tensor(op.outputs[0]))

    def name_for(self, op: OperatorInfo, suffix: str = "") -> str:
        """A unique layer name for ``op``; an output named by the caller keeps that name on
        its last layer (the activation, when one follows)."""
        wanted = self.names.get(op.outputs[0])
        if wanted and op.op in _ACTIVATED and self.implied_activation(op) and not suffix:
            base = f"{wanted}_linear"
        elif wanted and (not suffix or op.op in _ACTIVATED):
            base = wanted
        else:
            base = layer_name(self.tensor(op.outputs[0]).name) + suffix
        name, n = base, 1
        while name in self.used:
            n += 1
            name = f"{base}_{n}"
        self.used.add(name)
        return name

    def activation(self, x: Any, op: OperatorInfo) -> Any:
        """Apply the op's fused or range-implied activation (see ``implied_activation``)."""
        act = self.implied_activation(op)
        if act is None:
            return x
        name = self.name_for(op, f"_{act}")
        if act == "relu6":
            return keras.layers.ReLU(6.0, name=name)(x)
        if act == "relu":
            return keras.layers.ReLU(name=name)(x)
        return keras.layers.Activation(act, name=name)(x)

    def unsupported(self, op: OperatorInfo, what: str = "") -> UnsupportedModelError:
        t = self.tensor(op.outputs[0]).name if op.outputs else "?"
        detail = f" ({what})" if what else ""
        return UnsupportedModelError(
            f"operator {op.index} {op.op}{detail}, producing {t!r}, cannot be imported; "
            f"supported: {', '.join(sorted(SUPPORTED_OPS))}"
        )


# --------------------------------------------------------------------------- op handlers


def _conv(b: _Builder, op: OperatorInfo, ins: list[Any]) -> Any:
    w, bias = b.const(op.inputs[1]), b.const(op.inputs[2]) if len(op.inputs) > 2 else None
    if w is None:
        raise b.unsupported(op, "non-constant weights")
    o = op.options
    kernel = np.transpose(w, (1, 2, 3, 0))  # (out, kh, kw, in) -> (kh, kw, in, out)
    layer = keras.layers.Conv2D(
        kernel.shape[-1],
        kernel.shape[:2],
        strides=(o.get("stride_h", 1), o.get("stride_w", 1)),
        padding=str(o.get("padding", "SAME")).lower(),
        dilation_rate=(o.get("dilation_h", 1), o.get("dilation_w", 1)),
        use_bias=True,
        name=b.name_for(op),
    )
    y = layer(ins[0])
    layer.set_weights(
        [kernel, bias if bias is not None else np.zeros(kernel.shape[-1], np.float32)]
    )
    return b.activation(y, op)


def _depthwise(b: _Builder, op: OperatorInfo, ins: list[Any]) -> Any:
    w, bias = b.const(op.inputs[1]), b.const(op.inputs[2]) if len(op.inputs) > 2 else None
    if w is None:
        raise b.unsupported(op, "non-constant weights")
    o = op.options
    channels = int(ins[0].shape[-1])
    mult = int(o.get("depth_multiplier") or w.shape[-1] // channels)
    kernel = w[0].reshape(w.shape[1], w.shape[2], channels, mult)
    layer = keras.layers.DepthwiseConv2D(
        kernel.shape[:2],
        strides=(o.get("stride_h", 1), o.get("stride_w", 1)),
        padding=str(o.get("padding", "SAME")).lower(),
        depth_multiplier=mult,
        dilation_rate=(o.get("dilation_h", 1), o.get("dilation_w", 1)),
        use_bias=True,
        name=b.name_for(op),
    )
    y = layer(ins[0])
    n = channels * mult
    layer.set_weights([kernel, bias if bias is not None else np.zeros(n, np.float32)])
    return b.activation(y, op)


def _fully_connected(b: _Builder, op: OperatorInfo, ins: list[Any]) -> Any:
    w, bias = b.const(op.inputs[1]), b.const(op.inputs[2]) if len(op.inputs) > 2 else None
    if w is None:
        raise b.unsupported(op, "non-constant weights")
    x = ins[0]
    if len(x.shape) != 2:
        x = keras.layers.Flatten(name=b.name_for(op, "_flatten"))(x)
    layer = keras.layers.Dense(w.shape[0], name=b.name_for(op))
    y = layer(x)
    layer.set_weights([w.T, bias if bias is not None else np.zeros(w.shape[0], np.float32)])
    return b.activation(y, op)


_BINARY = {"ADD": "add", "SUB": "sub", "MUL": "mul", "DIV": "div", "MAXIMUM": "maximum",
           "MINIMUM": "minimum"}  # fmt: skip


def _binary(b: _Builder, op: OperatorInfo, ins: list[Any]) -> Any:
    kind = _BINARY[op.op]
    consts = [b.const(i) for i in op.inputs]
    if all(c is None for c in consts):
        layers = {"add": keras.layers.Add, "sub": keras.layers.Subtract,
                  "mul": keras.layers.Multiply, "maximum": keras.layers.Maximum,
                  "minimum": keras.layers.Minimum}  # fmt: skip
        if kind not in layers:
            raise b.unsupported(op, "division of two activations")
        y = layers[kind](name=b.name_for(op))(ins)
    elif consts[0] is not None and consts[1] is not None:
        raise b.unsupported(op, "two constant operands")
    else:
        reverse = consts[0] is not None
        x = ins[1] if reverse else ins[0]
        c = consts[0] if reverse else consts[1]
        y = ConstantOp(kind, c, reverse=reverse, name=b.name_for(op))(x)
    return b.activation(y, op)


def _concat(b: _Builder, op: OperatorInfo, ins: list[Any]) -> Any:
    if any(i is None for i in ins):
        raise b.unsupported(op, "a constant operand")
    y = keras.layers.Concatenate(axis=int(op.options.get("axis", -1)), name=b.name_for(op))(ins)
    return b.activation(y, op)


def _reshape(b: _Builder, op: OperatorInfo, ins: list[Any]) -> Any:
    shape = list(b.tensor(op.outputs[0]).shape)
    if len(shape) < 2 or shape[0] != 1:
        raise b.unsupported(op, f"output shape {shape} drops the batch dimension")
    target = [-1, *shape[2:]]  # the flattened length follows the input size
    return keras.layers.Reshape(tuple(target), name=b.name_for(op))(ins[0])


def _activation_op(b: _Builder, op: OperatorInfo, ins: list[Any]) -> Any:
    name = b.name_for(op)
    if op.op == "RELU":
        return keras.layers.ReLU(name=name)(ins[0])
    if op.op == "RELU6":
        return keras.layers.ReLU(6.0, name=name)(ins[0])
    kind = {"LOGISTIC": "sigmoid", "TANH": "tanh", "HARD_SWISH": "hard_swish"}[op.op]
    return keras.layers.Activation(kind, name=name)(ins[0])


def _softmax(b: _Builder, op: OperatorInfo, ins: list[Any]) -> Any:
    beta = float(op.options.get("beta") or 1.0)
    x = ins[0] if beta == 1.0 else ConstantOp("mul", beta, name=b.name_for(op, "_beta"))(ins[0])
    return keras.layers.Softmax(name=b.name_for(op))(x)


def _pool(b: _Builder, op: OperatorInfo, ins: list[Any]) -> Any:
    o = op.options
    cls = keras.layers.AveragePooling2D if op.op == "AVERAGE_POOL_2D" else keras.layers.MaxPooling2D
    y = cls(
        pool_size=(o.get("filter_h", 1), o.get("filter_w", 1)),
        strides=(o.get("stride_h", 1), o.get("stride_w", 1)),
        padding=str(o.get("padding", "VALID")).lower(),
        name=b.name_for(op),
    )(ins[0])
    return b.activation(y, op)


def _mean(b: _Builder, op: OperatorInfo, ins: list[Any]) -> Any:
    axes = b.const(op.inputs[1])
    if axes is None or sorted(int(a) % 4 for a in np.ravel(axes)) != [1, 2]:
        raise b.unsupported(op, "a mean over other axes than height and width")
    keep = bool(op.options.get("keep_dims", False))
    return keras.layers.GlobalAveragePooling2D(keepdims=keep, name=b.name_for(op))(ins[0])


def _pad(b: _Builder, op: OperatorInfo, ins: list[Any]) -> Any:
    pads = b.const(op.inputs[1])
    if op.op == "PADV2" and len(op.inputs) > 2:
        fill = b.const(op.inputs[2])
        if fill is None or float(np.ravel(fill)[0]) != 0.0:
            raise b.unsupported(op, "padding with a value other than 0")
    if pads is None or pads.shape != (4, 2) or pads[0].any() or pads[3].any():
        raise b.unsupported(op, "padding other than height and width")
    p = pads.astype(int)
    return keras.layers.ZeroPadding2D(
        ((int(p[1, 0]), int(p[1, 1])), (int(p[2, 0]), int(p[2, 1]))), name=b.name_for(op)
    )(ins[0])


def _resize(b: _Builder, op: OperatorInfo, ins: list[Any]) -> Any:
    in_h, in_w = (int(v) for v in b.tensor(op.inputs[0]).shape[1:3])
    out_h, out_w = (int(v) for v in b.tensor(op.outputs[0]).shape[1:3])
    o = op.options
    kwargs: dict[str, Any] = {
        "method": "bilinear" if op.op == "RESIZE_BILINEAR" else "nearest",
        "align_corners": bool(o.get("align_corners", False)),
        "half_pixel_centers": bool(o.get("half_pixel_centers", False)),
    }
    if out_h % in_h == 0 and out_w % in_w == 0 and out_h // in_h == out_w // in_w:
        kwargs["factor"] = out_h // in_h
    else:
        kwargs["size"] = (out_h, out_w)
    return ResizeImages(name=b.name_for(op), **kwargs)(ins[0])


def _identity(b: _Builder, op: OperatorInfo, ins: list[Any]) -> Any:
    out = b.tensor(op.outputs[0])
    if op.op == "CAST" and out.dtype not in ("float32", "int8", "uint8"):
        raise b.unsupported(op, f"a cast to {out.dtype}")
    return ins[0]


# Ops whose handler ends with ``_Builder.activation``.
_ACTIVATED = frozenset(
    {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", *_BINARY, "CONCATENATION",
     "AVERAGE_POOL_2D", "MAX_POOL_2D"}
)  # fmt: skip

_HANDLERS = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _depthwise,
    "FULLY_CONNECTED": _fully_connected,
    **dict.fromkeys(_BINARY, _binary),
    "CONCATENATION": _concat,
    "RESHAPE": _reshape,
    "SQUEEZE": _reshape,
    **dict.fromkeys(("RELU", "RELU6", "LOGISTIC", "TANH", "HARD_SWISH"), _activation_op),
    "SOFTMAX": _softmax,
    "AVERAGE_POOL_2D": _pool,
    "MAX_POOL_2D": _pool,
    "MEAN": _mean,
    "PAD": _pad,
    "PADV2": _pad,
    "RESIZE_BILINEAR": _resize,
    "RESIZE_NEAREST_NEIGHBOR": _resize,
    **dict.fromkeys(("QUANTIZE", "DEQUANTIZE", "CAST"), _identity),
}

#: Operators :func:`translate_graph` turns into Keras layers.
SUPPORTED_OPS = frozenset(_HANDLERS)


def _needed_ops(sub: SubgraphInfo, outputs: Sequence[int]) -> list[OperatorInfo]:
    """The operators the ``outputs`` tensors depend on, in graph order."""
    made_by = producers(sub)
    seen: set[int] = set()
    stack = list(outputs)
    while stack:
        t = stack.pop()
        op = made_by.get(t)
        if op is None or op.index in seen:
            continue
        seen.add(op.index)
        stack.extend(i for i in op.inputs if i >= 0)
    return [op for op in sub.operators if op.index in seen]


def translate_graph(
    graph: TFLiteGraph,
    outputs: Sequence[int],
    *,
    output_names: Sequence[str] | None = None,
    name: str = "imported",
) -> Any:
    """A float ``keras.Model`` computing the tensors ``outputs`` (indices into the main
    subgraph) from the graph's image input, the last layer of output ``i`` named
    ``output_names[i]``. Raises :class:`UnsupportedModelError` at the first op it cannot
    translate (in graph order)."""
    sub = graph.main
    if len(sub.inputs) != 1:
        raise UnsupportedModelError(f"expected one input, the graph has {len(sub.inputs)}")
    names = dict(zip(outputs, output_names or (), strict=False))
    b = _Builder(graph, names)
    ops = _needed_ops(sub, outputs)
    for op in ops:
        if op.op not in _HANDLERS:
            raise b.unsupported(op)
    inp = b.tensor(sub.inputs[0])
    if len(inp.shape) != 4:
        raise UnsupportedModelError(f"input {list(inp.shape)} is not an image [1, H, W, C]")
    image = keras.Input(shape=inp.shape[1:], batch_size=None, name="image", dtype="float32")
    b.values[inp.index] = image
    for op in ops:
        ins = [b.values.get(i) if i >= 0 else None for i in op.inputs]
        if ins[0] is None and op.op not in _BINARY:
            raise b.unsupported(op, "a constant image operand")
        b.values[op.outputs[0]] = _HANDLERS[op.op](b, op, ins)
    result = []
    for t in outputs:
        y = b.values.get(t)
        if y is None:
            raise UnsupportedModelError(f"output tensor {b.tensor(t).name!r} is not computed")
        want = names.get(t)
        if want and y._keras_history.operation.name != want:  # e.g. an identity-like op
            y = keras.layers.Identity(name=want)(y)
        result.append(y)
    return keras.Model(image, result, name=name)
