"""Building blocks shared by the zoo builders (conv-BN-activation, depthwise-separable, activations).

Every helper takes ``km``: the Keras *module* to build with, ``keras`` (Keras 3, the default) or
``tf_keras`` (for TFMOT pruning/QAT copies, which need tf-keras layers). Only layers that exist
with the same meaning in both are used: Conv2D, DepthwiseConv2D, BatchNormalization, ReLU,
Add, Multiply, Rescaling, GlobalAveragePooling2D, Dropout, Dense, Reshape, Concatenate,
UpSampling2D, Activation. Activations are limited to what quantizes to int8 and maps onto the
Edge TPU (ReLU, ReLU6, logistic, softmax), plus hard-swish/hard-sigmoid for the MobileNetV3
variants that are not marked Edge-TPU-ready.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import keras

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99


def keras_module(km: ModuleType | None = None) -> ModuleType:
    """The Keras module to build with: ``km`` or, by default, Keras 3."""
    return keras if km is None else km


def is_keras3(km: ModuleType) -> bool:
    return str(getattr(km, "__version__", "3")).split(".")[0] == "3"


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` without losing more than 10%."""
    if min_value is None:
        min_value = divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return int(new)


def activation(x: Any, kind: str | None, name: str, km: ModuleType) -> Any:
    """Apply ``kind``: None/"linear", "relu", "relu6", "sigmoid", "hard_sigmoid", "hard_swish"."""
    L = km.layers
    if kind in (None, "linear"):
        return x
    if kind == "relu":
        return L.ReLU(name=name)(x)
    if kind == "relu6":
        return L.ReLU(6.0, name=name)(x)
    if kind == "sigmoid":
        return L.Activation("sigmoid", name=name)(x)
    if kind == "hard_sigmoid":
        return hard_sigmoid(x, name, km)
    if kind == "hard_swish":
        if is_keras3(km):
            # Keras 3: x * relu6(x + 3) / 6, which the TFLite converter fuses into HARD_SWISH.
            return L.Activation("hard_swish", name=name)(x)
        return L.Multiply(name=name)([x, hard_sigmoid(x, f"{name}_gate", km)])
    raise ValueError(f"unknown activation {kind!r}")


def hard_sigmoid(x: Any, name: str, km: ModuleType) -> Any:
    """relu6(x + 3) / 6 (the MobileNetV3 definition; tf-keras' "hard_sigmoid" differs)."""
    L = km.layers
    if is_keras3(km):
        return L.Activation("hard_sigmoid", name=name)(x)
    x = L.Rescaling(1.0 / 6.0, offset=0.5, name=f"{name}_affine")(x)
    return L.ReLU(1.0, name=name)(x)


def conv_bn(
    x: Any,
    filters: int,
    kernel: int,
    *,
    stride: int = 1,
    act: str | None = "relu6",
    name: str,
    km: ModuleType,
) -> Any:
    """Conv2D (no bias, "same") -> BatchNorm -> activation; layers ``{name}``, ``_bn``, ``_act``."""
    x = km.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False, name=name
    )(x)
    return _bn_act(x, act, name, km)


def dw_bn(
    x: Any,
    kernel: int = 3,
    *,
    stride: int = 1,
    act: str | None = "relu6",
    name: str,
    km: ModuleType,
) -> Any:
    """DepthwiseConv2D (no bias, "same") -> BatchNorm -> activation."""
    x = km.layers.DepthwiseConv2D(
        kernel, strides=stride, padding="same", use_bias=False, name=name
    )(x)
    return _bn_act(x, act, name, km)


def _bn_act(x: Any, act: str | None, name: str, km: ModuleType) -> Any:
    """BatchNorm ``{name}_bn`` then activation ``{name}_{act}`` (none when ``act`` is None)."""
    x = km.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return activation(x, act, f"{name}_{act}", km) if act else x


def separable_bn(
    x: Any,
    filters: int,
    kernel: int = 3,
    *,
    stride: int = 1,
    act: str | None = "relu6",
    name: str,
    km: ModuleType,
) -> Any:
    """Depthwise kxk (BN, act) then pointwise 1x1 (BN, act): the SSDLite/MobileNet building block."""
    x = dw_bn(x, kernel, stride=stride, act=act, name=f"{name}_dw", km=km)
    return conv_bn(x, filters, 1, act=act, name=f"{name}_pw", km=km)


def head_conv(
    x: Any,
    filters: int,
    *,
    name: str,
    km: ModuleType,
    bias_init: float = 0.0,
) -> Any:
    """The final 1x1 Conv2D of a prediction head (with bias, no BN, no activation)."""
    L = km.layers
    return L.Conv2D(
        filters,
        1,
        padding="same",
        use_bias=True,
        bias_initializer=km.initializers.Constant(bias_init),
        name=name,
    )(x)


def upsample2x(x: Any, *, name: str, km: ModuleType) -> Any:
    """Nearest-neighbour 2x upsampling that converts to one RESIZE_NEAREST_NEIGHBOR op.

    Keras 3's ``UpSampling2D(interpolation="nearest")`` lowers to EXPAND_DIMS/TILE/RESHAPE (no
    TILE on the Edge TPU), and its ``Resizing`` layer makes the layers after it run in training
    mode when a model is called without ``training=`` (batch-norm on batch statistics). Keras 3
    gets the ``UpSampling2D`` subclass below; tf-keras' own already uses the resize op.
    """
    if not is_keras3(km):
        return km.layers.UpSampling2D(2, interpolation="nearest", name=name)(x)
    return UpSampling2D(2, interpolation="nearest", name=name)(x)


@keras.saving.register_keras_serializable(package="edgekit")
class UpSampling2D(keras.layers.UpSampling2D):
    """Keras 3 ``UpSampling2D`` whose "nearest" mode is one image resize (RESIZE_NEAREST_NEIGHBOR).

    Same class name and config as Keras', so a layer-by-layer tf-keras translation maps it 1:1.
    """

    def call(self, inputs: Any) -> Any:
        if self.interpolation != "nearest" or self.data_format != "channels_last":
            return super().call(inputs)
        h, w = int(inputs.shape[1]), int(inputs.shape[2])
        size = (h * self.size[0], w * self.size[1])
        return keras.ops.image.resize(inputs, size, interpolation="nearest")


def argmax(x: Any, axis: int) -> Any:
    """int32 argmax that converts to the builtin ARG_MAX op.

    Keras 3's ``ops.argmax`` on TensorFlow adds a -0.0 fix-up with ``BitwiseAnd``, which TFLite
    only runs through Flex; with the TensorFlow backend this calls ``tf.argmax`` directly.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.argmax(x, axis=axis, output_type=tf.int32)
    return keras.ops.argmax(x, axis=axis)


def take_rows(params: Any, indices: Any) -> Any:
    """``params[b, indices[b, ...]]``: entries of axis 1 picked per batch item ``b``.

    ``params`` is ``(B, N, ...)``, ``indices`` ``(B,)`` or ``(B, K)`` int; the result is
    ``(B, ...)`` or ``(B, K, ...)``. On TensorFlow this is one builtin GATHER (``batch_dims=1``):
    about 7x cheaper in TFLite than a one-hot product summed over ``N``.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.gather(params, indices, batch_dims=1)
    ops = keras.ops
    single = len(indices.shape) == 1
    idx = ops.expand_dims(indices, 1) if single else indices
    for _ in params.shape[2:]:
        idx = ops.expand_dims(idx, -1)
    out = ops.take_along_axis(params, idx, axis=1)
    return out[:, 0] if single else out


def classifier_head(
    x: Any,
    num_classes: int,
    *,
    dropout: float,
    km: ModuleType,
    hidden: int | None = None,
    hidden_act: str | None = None,
) -> Any:
    """Global average pool -> [Dense(hidden) -> act] -> Dropout -> Dense -> softmax ``[1, N]``.

    Layers: ``avg_pool``, (``head_dense``, ``head_act``), ``dropout``, ``logits``, ``predictions``.
    """
    L = km.layers
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    if hidden:
        x = L.Dense(hidden, name="head_dense")(x)
        x = activation(x, hidden_act, "head_act", km)
    if dropout > 0:
        x = L.Dropout(dropout, name="dropout")(x)
    x = L.Dense(num_classes, name="logits")(x)
    return L.Softmax(name="predictions")(x)
