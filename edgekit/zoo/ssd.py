"""SSDLite: a backbone's stride-16 and stride-32 maps, four extra stride-2 layers, and
depthwise-separable box/class heads (Sandler et al. 2018, as in the TF Object Detection API's
``ssdlite_mobilenet_v2``).

Outputs, raw (decoding lives in the runtime, decoder ``"ssd_raw"``):

- ``box_encodings`` ``[1, A, 4]``: ``(ty, tx, th, tw)`` against the anchors of
  ``edgekit.core.anchors.ssd_anchors(**anchor_kwargs)`` with box-coder scales ``(10, 10, 5, 5)``:
  ``cy = ty / 10 * ha + cya``, ``h = exp(th / 5) * ha``.
- ``class_logits`` ``[1, A, C + 1]``: logits, column 0 is the background. Scores are
  ``sigmoid(logits)`` (independent per class, as the TF OD API SSDLite configs use, which
  quantizes better than a softmax and lets a focal loss train it); the background column is
  dropped after the activation.

The head's class bias starts at the focal-loss prior ``-log((1 - 0.01) / 0.01)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from edgekit.core.anchors import (
    DEFAULT_ASPECT_RATIOS,
    num_anchors_per_location,
    ssd_anchors,
    ssd_feature_sizes,
)
from edgekit.errors import UsageError
from edgekit.zoo.backbones import get_backbone
from edgekit.zoo.layers import conv_bn, dw_bn, head_conv, keras_module
from edgekit.zoo.mobilenet import _input

__all__ = ["BOX_SCALES", "anchors_for", "build_ssdlite", "ssd_anchor_kwargs"]

BOX_SCALES: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
EXTRA_DEPTHS: tuple[int, ...] = (512, 256, 256, 128)
PRIOR_BIAS = -math.log((1 - 0.01) / 0.01)


def _size(input_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(input_size, int):
        return (input_size, input_size)
    h, w = (int(v) for v in input_size)
    return (h, w)


def ssd_anchor_kwargs(
    input_size: int | Sequence[int],
    num_layers: int = 1 + 1 + len(EXTRA_DEPTHS),
    min_scale: float = 0.2,
    max_scale: float = 0.95,
    aspect_ratios: Sequence[float] = DEFAULT_ASPECT_RATIOS,
) -> dict[str, Any]:
    """The ``ssd_anchors`` keyword arguments of an SSDLite at ``input_size`` (JSON-ready)."""
    h, w = _size(input_size)
    return {
        "input_size": [h, w],
        "feature_sizes": [list(s) for s in ssd_feature_sizes((h, w), num_layers)],
        "min_scale": float(min_scale),
        "max_scale": float(max_scale),
        "aspect_ratios": [float(a) for a in aspect_ratios],
        "interpolated_scale_aspect_ratio": 1.0,
        "reduce_boxes_in_lowest_layer": True,
    }


def build_ssdlite(
    backbone: str = "mobilenet_v2",
    num_classes: int = 90,
    input_size: int | tuple[int, int] = 320,
    *,
    width: float | None = None,
    extra_depths: Sequence[int] = EXTRA_DEPTHS,
    min_scale: float = 0.2,
    max_scale: float = 0.95,
    aspect_ratios: Sequence[float] = DEFAULT_ASPECT_RATIOS,
    km: ModuleType | None = None,
    batch_size: int | None = None,
) -> Any:
    """SSDLite on ``backbone`` -> ``keras.Model`` with outputs ``[box_encodings, class_logits]``.

    ``num_classes`` excludes the background. The anchors are
    ``ssd_anchors(**ssd_anchor_kwargs(input_size, 2 + len(extra_depths), min_scale, max_scale,
    aspect_ratios))``; their count equals the outputs' ``A``.
    """
    km = keras_module(km)
    L = km.layers
    if num_classes < 1:
        raise UsageError(f"num_classes must be >= 1, got {num_classes}")
    h, w = _size(input_size)
    if min(h, w) < 32:
        raise UsageError(f"SSDLite input must be at least 32x32, got {h}x{w}")
    bb = get_backbone(backbone)
    inputs = _input((h, w), km, batch_size)
    f = bb.features(inputs, bb.default_width if width is None else float(width), km)
    maps = [f.get("stride16_expand", f["stride16"]), f["stride32"]]
    x = maps[-1]
    for i, depth in enumerate(extra_depths, start=1):
        x = conv_bn(x, depth // 2, 1, name=f"extra_{i}_reduce", km=km)
        x = dw_bn(x, 3, stride=2, name=f"extra_{i}_dw", km=km)
        x = conv_bn(x, depth, 1, name=f"extra_{i}_expand", km=km)
        maps.append(x)
    per_loc = num_anchors_per_location(
        len(maps), min_scale=min_scale, max_scale=max_scale, aspect_ratios=tuple(aspect_ratios)
    )
    boxes, classes = [], []
    for i, (fm, n) in enumerate(zip(maps, per_loc, strict=True)):
        gh, gw = int(fm.shape[1]), int(fm.shape[2])
        b = dw_bn(fm, 3, name=f"box_head_{i}_dw", km=km)
        b = head_conv(b, n * 4, name=f"box_head_{i}", km=km)
        boxes.append(L.Reshape((gh * gw * n, 4), name=f"box_head_{i}_reshape")(b))
        c = dw_bn(fm, 3, name=f"class_head_{i}_dw", km=km)
        c = head_conv(c, n * (num_classes + 1), name=f"class_head_{i}", km=km, bias_init=PRIOR_BIAS)
        classes.append(L.Reshape((gh * gw * n, num_classes + 1), name=f"class_head_{i}_reshape")(c))
    box_encodings = L.Concatenate(axis=1, name="box_encodings")(boxes)
    class_logits = L.Concatenate(axis=1, name="class_logits")(classes)
    return km.Model(inputs, [box_encodings, class_logits], name=f"ssdlite_{backbone}")


def anchors_for(input_size: int | tuple[int, int], **kwargs: Any) -> Any:
    """The anchors ``(A, 4)`` of an SSDLite built with ``input_size`` and the same ``kwargs``."""
    return ssd_anchors(**ssd_anchor_kwargs(input_size, **kwargs))
