"""MobileNet V1, V2 and V3 (Small/Large, full and "minimalistic") backbones and classifiers.

Written here rather than taken from ``keras.applications`` so that every builder (1) exposes its
multi-scale feature maps (strides 4/8/16/32) under stable layer names for the detectors, (2)
uses "same" padding instead of explicit ZeroPadding (no PAD ops), and (3) can build with Keras 3
or tf-keras (``km=``). Layer structure, channel rounding and therefore parameter counts equal
keras.applications' (MobileNetV1 1.0: 4,253,864; V2 1.0: 3,538,984; V3-Large: 5,507,432;
V3-Small: 2,554,968 at 224x224 with 1000 classes); the tests check it.

A backbone function maps an input tensor to a ``Features`` dict:
``"stride4"``, ``"stride8"``, ``"stride16"``, ``"stride32"`` (last tensor at that stride; the
stride-32 one is the final conv, what the classifier pools) and ``"stride16_expand"`` (the
expansion output of the first stride-32 block, the stride-16 map SSDLite uses).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from edgekit.zoo.layers import (
    activation,
    classifier_head,
    conv_bn,
    dw_bn,
    hard_sigmoid,
    keras_module,
    make_divisible,
)

Features = dict[str, Any]

__all__ = [
    "Features",
    "build_mobilenet_v1",
    "build_mobilenet_v2",
    "build_mobilenet_v3",
    "mobilenet_v1_backbone",
    "mobilenet_v2_backbone",
    "mobilenet_v3_backbone",
]


class _StrideTracker:
    """Records the last tensor at each output stride while a backbone is built."""

    def __init__(self) -> None:
        self.stride = 1
        self.features: Features = {}

    def down(self, expansion: Any = None) -> None:
        if expansion is not None:
            self.features[f"stride{self.stride}_expand"] = expansion
        self.stride *= 2

    def mark(self, x: Any) -> Any:
        self.features[f"stride{self.stride}"] = x
        return x


# --------------------------------------------------------------------------- V1


_V1_BLOCKS = (  # (pointwise filters, depthwise stride)
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)


def mobilenet_v1_backbone(
    inputs: Any, *, alpha: float = 1.0, km: ModuleType | None = None
) -> Features:
    """MobileNetV1 (Howard et al. 2017). Layers ``conv1``, ``conv_dw_{i}``, ``conv_pw_{i}`` (i=1..13)."""
    km = keras_module(km)
    t = _StrideTracker()
    x = conv_bn(inputs, int(32 * alpha), 3, stride=2, name="conv1", km=km)
    t.down()
    t.mark(x)
    for i, (filters, stride) in enumerate(_V1_BLOCKS, start=1):
        if stride == 2:
            t.down()
        x = dw_bn(x, 3, stride=stride, name=f"conv_dw_{i}", km=km)
        x = conv_bn(x, int(filters * alpha), 1, name=f"conv_pw_{i}", km=km)
        t.mark(x)
    return t.features


def build_mobilenet_v1(
    input_size: int | tuple[int, int] = 224,
    num_classes: int = 1000,
    *,
    alpha: float = 1.0,
    dropout: float = 1e-3,
    km: ModuleType | None = None,
    batch_size: int | None = None,
) -> Any:
    """MobileNetV1 classifier: ``[1, H, W, 3]`` (pixels in [-1, 1]) -> softmax ``[1, num_classes]``."""
    km = keras_module(km)
    inputs = _input(input_size, km, batch_size)
    f = mobilenet_v1_backbone(inputs, alpha=alpha, km=km)
    out = classifier_head(f["stride32"], num_classes, dropout=dropout, km=km)
    return km.Model(inputs, out, name=f"mobilenet_v1_{alpha:g}")


# --------------------------------------------------------------------------- V2


_V2_BLOCKS = (  # (expansion, filters, repeats, first stride)
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _v2_block(
    x: Any,
    t: _StrideTracker,
    expansion: int,
    filters: int,
    stride: int,
    block_id: int,
    km: ModuleType,
) -> Any:
    L = km.layers
    in_ch = int(x.shape[-1])
    prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
    h = x
    if expansion != 1:
        h = conv_bn(h, expansion * in_ch, 1, act=None, name=f"{prefix}expand", km=km)
        h = activation(h, "relu6", f"{prefix}expand_relu", km)
    if stride == 2:
        t.down(h if expansion != 1 else None)
    h = dw_bn(h, 3, stride=stride, act=None, name=f"{prefix}depthwise", km=km)
    h = activation(h, "relu6", f"{prefix}depthwise_relu", km)
    h = conv_bn(h, filters, 1, act=None, name=f"{prefix}project", km=km)
    if stride == 1 and in_ch == filters:
        h = L.Add(name=f"{prefix}add")([x, h])
    return t.mark(h)


def mobilenet_v2_backbone(
    inputs: Any, *, alpha: float = 1.0, km: ModuleType | None = None
) -> Features:
    """MobileNetV2 (Sandler et al. 2018): layers ``Conv1``, ``block_{i}_{expand,depthwise,project,add}``,
    ``Conv_1``/``out_relu`` (the 1280-channel stride-32 map)."""
    km = keras_module(km)
    t = _StrideTracker()
    x = conv_bn(inputs, make_divisible(32 * alpha), 3, stride=2, act=None, name="Conv1", km=km)
    x = activation(x, "relu6", "Conv1_relu", km)
    t.down()
    t.mark(x)
    block_id = 0
    for expansion, filters, repeats, first_stride in _V2_BLOCKS:
        out_ch = make_divisible(int(filters * alpha))
        for r in range(repeats):
            stride = first_stride if r == 0 else 1
            x = _v2_block(x, t, expansion, out_ch, stride, block_id, km)
            block_id += 1
    last = make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    x = conv_bn(x, last, 1, act=None, name="Conv_1", km=km)
    x = activation(x, "relu6", "out_relu", km)
    t.mark(x)
    return t.features


def build_mobilenet_v2(
    input_size: int | tuple[int, int] = 224,
    num_classes: int = 1000,
    *,
    alpha: float = 1.0,
    dropout: float = 0.0,
    km: ModuleType | None = None,
    batch_size: int | None = None,
) -> Any:
    """MobileNetV2 classifier: ``[1, H, W, 3]`` (pixels in [-1, 1]) -> softmax ``[1, num_classes]``."""
    km = keras_module(km)
    inputs = _input(input_size, km, batch_size)
    f = mobilenet_v2_backbone(inputs, alpha=alpha, km=km)
    out = classifier_head(f["stride32"], num_classes, dropout=dropout, km=km)
    return km.Model(inputs, out, name=f"mobilenet_v2_{alpha:g}")


# --------------------------------------------------------------------------- V3

# (expansion, filters, kernel ("k" = 5, or 3 when minimalistic), stride, se, activation)
# activation "hs" = hard-swish (ReLU when minimalistic).
_V3_LARGE = (
    (1, 16, 3, 1, False, "relu"),
    (4, 24, 3, 2, False, "relu"),
    (3, 24, 3, 1, False, "relu"),
    (3, 40, "k", 2, True, "relu"),
    (3, 40, "k", 1, True, "relu"),
    (3, 40, "k", 1, True, "relu"),
    (6, 80, 3, 2, False, "hs"),
    (2.5, 80, 3, 1, False, "hs"),
    (2.3, 80, 3, 1, False, "hs"),
    (2.3, 80, 3, 1, False, "hs"),
    (6, 112, 3, 1, True, "hs"),
    (6, 112, 3, 1, True, "hs"),
    (6, 160, "k", 2, True, "hs"),
    (6, 160, "k", 1, True, "hs"),
    (6, 160, "k", 1, True, "hs"),
)
_V3_SMALL = (
    (1, 16, 3, 2, True, "relu"),
    (72.0 / 16, 24, 3, 2, False, "relu"),
    (88.0 / 24, 24, 3, 1, False, "relu"),
    (4, 40, "k", 2, True, "hs"),
    (6, 40, "k", 1, True, "hs"),
    (6, 40, "k", 1, True, "hs"),
    (3, 48, "k", 1, True, "hs"),
    (3, 48, "k", 1, True, "hs"),
    (6, 96, "k", 2, True, "hs"),
    (6, 96, "k", 1, True, "hs"),
    (6, 96, "k", 1, True, "hs"),
)
_V3_LAST_POINT = {"large": 1280, "small": 1024}


def _se_block(x: Any, filters: int, prefix: str, km: ModuleType) -> Any:
    L = km.layers
    s = L.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}squeeze_excite_avg_pool")(x)
    s = L.Conv2D(
        make_divisible(filters * 0.25), 1, padding="same", name=f"{prefix}squeeze_excite_conv"
    )(s)
    s = L.ReLU(name=f"{prefix}squeeze_excite_relu")(s)
    s = L.Conv2D(filters, 1, padding="same", name=f"{prefix}squeeze_excite_conv_1")(s)
    s = hard_sigmoid(s, f"{prefix}squeeze_excite_hard_sigmoid", km)
    return L.Multiply(name=f"{prefix}squeeze_excite_mul")([x, s])


def _v3_block(
    x: Any,
    t: _StrideTracker,
    expansion: float,
    filters: int,
    kernel: int,
    stride: int,
    se: bool,
    act: str,
    block_id: int,
    km: ModuleType,
) -> Any:
    L = km.layers
    in_ch = int(x.shape[-1])
    prefix = f"expanded_conv_{block_id}_" if block_id else "expanded_conv_"
    h = x
    exp_ch = make_divisible(in_ch * expansion)
    if block_id:
        h = conv_bn(h, exp_ch, 1, act=None, name=f"{prefix}expand", km=km)
        h = activation(h, act, f"{prefix}expand_{act}", km)
    if stride == 2:
        t.down(h if block_id else None)
    h = dw_bn(h, kernel, stride=stride, act=None, name=f"{prefix}depthwise", km=km)
    h = activation(h, act, f"{prefix}depthwise_{act}", km)
    if se:
        h = _se_block(h, exp_ch, prefix, km)
    h = conv_bn(h, filters, 1, act=None, name=f"{prefix}project", km=km)
    if stride == 1 and in_ch == filters:
        h = L.Add(name=f"{prefix}add")([x, h])
    return t.mark(h)


def mobilenet_v3_backbone(
    inputs: Any,
    *,
    variant: str = "large",
    alpha: float = 1.0,
    minimalistic: bool = False,
    km: ModuleType | None = None,
) -> Features:
    """MobileNetV3 (Howard et al. 2019), "large" or "small". ``minimalistic`` drops squeeze-excite
    and hard-swish and uses 3x3 kernels only (the accelerator-friendly variant). Layers ``conv``,
    ``expanded_conv_{i}_{expand,depthwise,project,add}``, ``conv_1`` (the stride-32 map)."""
    km = keras_module(km)
    if variant not in ("large", "small"):
        raise ValueError(f"MobileNetV3 variant must be 'large' or 'small', got {variant!r}")
    blocks = _V3_LARGE if variant == "large" else _V3_SMALL
    hs = "relu" if minimalistic else "hard_swish"
    big_kernel = 3 if minimalistic else 5
    t = _StrideTracker()
    x = conv_bn(inputs, 16, 3, stride=2, act=None, name="conv", km=km)
    x = activation(x, hs, f"conv_{hs}", km)
    t.down()
    t.mark(x)
    for i, (expansion, filters, kernel, stride, se, act) in enumerate(blocks):
        x = _v3_block(
            x,
            t,
            expansion,
            make_divisible(filters * alpha),
            big_kernel if kernel == "k" else kernel,
            stride,
            se and not minimalistic,
            hs if act == "hs" else "relu",
            i,
            km,
        )
    x = conv_bn(x, make_divisible(int(x.shape[-1]) * 6), 1, act=None, name="conv_1", km=km)
    x = activation(x, hs, f"conv_1_{hs}", km)
    t.mark(x)
    return t.features


def v3_head_kwargs(variant: str, alpha: float = 1.0, minimalistic: bool = False) -> dict[str, Any]:
    """Classifier-head extras of MobileNetV3: a 1x1 (dense) layer of 1280/1024 units before dropout."""
    last = _V3_LAST_POINT[variant]
    if alpha > 1.0:
        last = make_divisible(last * alpha)
    return {"hidden": last, "hidden_act": "relu" if minimalistic else "hard_swish"}


def build_mobilenet_v3(
    input_size: int | tuple[int, int] = 224,
    num_classes: int = 1000,
    *,
    variant: str = "large",
    alpha: float = 1.0,
    minimalistic: bool = False,
    dropout: float = 0.2,
    km: ModuleType | None = None,
    batch_size: int | None = None,
) -> Any:
    """MobileNetV3 classifier: ``[1, H, W, 3]`` (pixels in [-1, 1]) -> softmax ``[1, num_classes]``."""
    km = keras_module(km)
    inputs = _input(input_size, km, batch_size)
    f = mobilenet_v3_backbone(
        inputs, variant=variant, alpha=alpha, minimalistic=minimalistic, km=km
    )
    out = classifier_head(
        f["stride32"],
        num_classes,
        dropout=dropout,
        km=km,
        **v3_head_kwargs(variant, alpha, minimalistic),
    )
    suffix = "_minimalistic" if minimalistic else ""
    return km.Model(inputs, out, name=f"mobilenet_v3_{variant}{suffix}_{alpha:g}")


def _input(input_size: int | tuple[int, int], km: ModuleType, batch_size: int | None = None) -> Any:
    """The ``image`` input: float pixels ``[batch_size, H, W, 3]`` (batch None = any).

    A fixed ``batch_size=1`` gives static shapes throughout (no SHAPE/PACK ops around the
    reshapes after conversion), which the Edge TPU compiler needs.
    """
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    return km.Input(shape=(int(h), int(w), 3), batch_size=batch_size, name="image")
