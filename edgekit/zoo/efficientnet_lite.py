"""EfficientNet-Lite0..4 backbones and classifiers.

The Lite family as defined by the TF reference (``tensorflow/tpu``
``models/official/efficientnet/lite/efficientnet_lite_builder.py`` with ``efficientnet_model.py``):
the EfficientNet-B0 block table, compound-scaled in width and depth, but with ReLU6 instead of
swish, no squeeze-excite, and a fixed stem (32 channels), head (1280 channels) and fixed repeats
of the first and last block groups (``fix_head_stem=True``). Inputs are normalized with mean
127 and std 128. Per-variant (width, depth, resolution, dropout): lite0 (1.0, 1.0, 224, 0.2),
lite1 (1.0, 1.1, 240, 0.2), lite2 (1.1, 1.2, 260, 0.3), lite3 (1.2, 1.4, 280, 0.3),
lite4 (1.4, 1.8, 300, 0.3). Lite0 has 4,652,008 parameters at 1000 classes.

Stochastic depth (the reference's survival probability 0.8, decaying linearly over blocks) is a
``Dropout`` with ``noise_shape=(None, 1, 1, 1)`` on the residual branch: identity at inference.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from edgekit.zoo.layers import classifier_head, conv_bn, dw_bn, keras_module, make_divisible
from edgekit.zoo.mobilenet import Features, _input, _StrideTracker

__all__ = [
    "LITE_PARAMS",
    "build_efficientnet_lite",
    "efficientnet_lite_backbone",
    "lite_coefficients",
]

# name -> (width coefficient, depth coefficient, default resolution, dropout)
LITE_PARAMS: dict[str, tuple[float, float, int, float]] = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
    "efficientnet_lite3": (1.2, 1.4, 280, 0.3),
    "efficientnet_lite4": (1.4, 1.8, 300, 0.3),
}

# (kernel, repeats, stride, expansion, input filters, output filters), EfficientNet-B0.
_BLOCKS = (
    (3, 1, 1, 1, 32, 16),
    (3, 2, 2, 6, 16, 24),
    (5, 2, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (5, 3, 1, 6, 80, 112),
    (5, 4, 2, 6, 112, 192),
    (3, 1, 1, 6, 192, 320),
)
STEM_FILTERS = 32
HEAD_FILTERS = 1280


def _round_filters(filters: int, width: float) -> int:
    return make_divisible(filters * width, 8)


def _round_repeats(repeats: int, depth: float) -> int:
    return math.ceil(depth * repeats)


def _mbconv(
    x: Any,
    t: _StrideTracker,
    *,
    kernel: int,
    stride: int,
    expansion: int,
    in_filters: int,
    out_filters: int,
    drop_rate: float,
    name: str,
    km: ModuleType,
) -> Any:
    L = km.layers
    h = x
    if expansion != 1:
        h = conv_bn(h, in_filters * expansion, 1, act="relu6", name=f"{name}_expand_conv", km=km)
    if stride == 2:
        t.down(h if expansion != 1 else None)
    h = dw_bn(h, kernel, stride=stride, act="relu6", name=f"{name}_dwconv", km=km)
    h = conv_bn(h, out_filters, 1, act=None, name=f"{name}_project_conv", km=km)
    if stride == 1 and in_filters == out_filters:
        if drop_rate > 0:
            h = L.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(h)
        h = L.Add(name=f"{name}_add")([x, h])
    return t.mark(h)


def efficientnet_lite_backbone(
    inputs: Any,
    *,
    width: float = 1.0,
    depth: float = 1.0,
    drop_connect_rate: float = 0.2,
    km: ModuleType | None = None,
) -> Features:
    """EfficientNet-Lite features. Layers ``stem_conv``, ``block{g}{letter}_{expand_conv,dwconv,
    project_conv,add}`` (g = 1..7, letter = repeat), ``top_conv`` (1280, the stride-32 map)."""
    km = keras_module(km)
    t = _StrideTracker()
    x = conv_bn(inputs, STEM_FILTERS, 3, stride=2, act="relu6", name="stem_conv", km=km)
    t.down()
    t.mark(x)
    plan = []
    for g, (kernel, repeats, stride, expansion, fin, fout) in enumerate(_BLOCKS):
        fixed = g in (0, len(_BLOCKS) - 1)
        n = repeats if fixed else _round_repeats(repeats, depth)
        fin, fout = _round_filters(fin, width), _round_filters(fout, width)
        for r in range(n):
            plan.append(
                (g, r, kernel, stride if r == 0 else 1, expansion, fin if r == 0 else fout, fout)
            )
    total = len(plan)
    for b, (g, r, kernel, stride, expansion, fin, fout) in enumerate(plan):
        x = _mbconv(
            x,
            t,
            kernel=kernel,
            stride=stride,
            expansion=expansion,
            in_filters=fin,
            out_filters=fout,
            drop_rate=drop_connect_rate * b / total,
            name=f"block{g + 1}{chr(ord('a') + r)}",
            km=km,
        )
    x = conv_bn(x, HEAD_FILTERS, 1, act="relu6", name="top_conv", km=km)
    t.mark(x)
    return t.features


def lite_coefficients(name: str) -> tuple[float, float, int, float]:
    """(width, depth, resolution, dropout) of ``efficientnet_lite0`` .. ``efficientnet_lite4``."""
    if name not in LITE_PARAMS:
        raise ValueError(
            f"unknown EfficientNet-Lite variant {name!r}; known: {sorted(LITE_PARAMS)}"
        )
    return LITE_PARAMS[name]


def build_efficientnet_lite(
    variant: str = "efficientnet_lite0",
    input_size: int | tuple[int, int] | None = None,
    num_classes: int = 1000,
    *,
    width: float | None = None,
    dropout: float | None = None,
    km: ModuleType | None = None,
    batch_size: int | None = None,
) -> Any:
    """EfficientNet-Lite classifier: ``[1, H, W, 3]`` ((pixel - 127) / 128) -> softmax ``[1, N]``.

    ``width`` overrides the variant's width coefficient; ``input_size`` defaults to its resolution.
    """
    km = keras_module(km)
    w, d, res, drop = lite_coefficients(variant)
    inputs = _input(input_size or res, km, batch_size)
    f = efficientnet_lite_backbone(inputs, width=width or w, depth=d, km=km)
    out = classifier_head(
        f["stride32"], num_classes, dropout=drop if dropout is None else dropout, km=km
    )
    return km.Model(inputs, out, name=variant)
