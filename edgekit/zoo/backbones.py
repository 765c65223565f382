"""The table of backbones: how to build each one's feature maps and classifier head.

Detectors and the pose model pick a backbone by name and read its ``Features``
(``"stride4"`` .. ``"stride32"``, ``"stride16_expand"``) from one flat functional graph, so
layer names stay stable and no nested models appear.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from edgekit.errors import UsageError
from edgekit.zoo.efficientnet_lite import LITE_PARAMS, efficientnet_lite_backbone
from edgekit.zoo.layers import keras_module
from edgekit.zoo.mobilenet import (
    Features,
    mobilenet_v1_backbone,
    mobilenet_v2_backbone,
    mobilenet_v3_backbone,
    v3_head_kwargs,
)

__all__ = ["BACKBONES", "Backbone", "backbone_features", "get_backbone"]

MOBILENET_NORMALIZATION = (127.5, 127.5)  # pixels -> [-1, 1]
LITE_NORMALIZATION = (127.0, 128.0)  # the EfficientNet-Lite reference's MEAN_RGB / STDDEV_RGB

_V3_NOT_READY = (
    "hard-swish and squeeze-excite (HARD_SWISH, MUL of a pooled gate) do not all map onto the "
    "Edge TPU; use the _minimalistic variant"
)


@dataclass(frozen=True)
class Backbone:
    """A backbone: ``features(inputs, width, km) -> Features`` plus its classifier defaults."""

    name: str
    features: Callable[[Any, float, ModuleType], Features]
    default_width: float = 1.0
    default_input_size: int = 224
    normalization: tuple[float, float] = MOBILENET_NORMALIZATION
    dropout: float = 0.2
    head: Callable[[float], dict[str, Any]] = field(default=lambda width: {})
    edgetpu_ready: bool = True
    edgetpu_reason: str = "Conv2D/DepthwiseConv2D/ReLU6/Add only: int8 and fully mapped"


def _v3(variant: str, minimalistic: bool) -> Backbone:
    suffix = "_minimalistic" if minimalistic else ""
    return Backbone(
        name=f"mobilenet_v3_{variant}{suffix}",
        features=lambda x, w, km: mobilenet_v3_backbone(
            x, variant=variant, alpha=w, minimalistic=minimalistic, km=km
        ),
        head=lambda w: v3_head_kwargs(variant, w, minimalistic),
        edgetpu_ready=minimalistic,
        edgetpu_reason=(
            "minimalistic: no squeeze-excite, no hard-swish, 3x3 kernels, ReLU: fully mapped"
            if minimalistic
            else _V3_NOT_READY
        ),
    )


def _lite(name: str) -> Backbone:
    width, depth, res, dropout = LITE_PARAMS[name]
    return Backbone(
        name=name,
        features=lambda x, w, km: efficientnet_lite_backbone(x, width=w, depth=depth, km=km),
        default_width=width,
        default_input_size=res,
        normalization=LITE_NORMALIZATION,
        dropout=dropout,
        edgetpu_reason="ReLU6, no squeeze-excite: designed for int8 and the Edge TPU",
    )


BACKBONES: dict[str, Backbone] = {
    "mobilenet_v1": Backbone(
        name="mobilenet_v1",
        features=lambda x, w, km: mobilenet_v1_backbone(x, alpha=w, km=km),
        dropout=1e-3,
    ),
    "mobilenet_v2": Backbone(
        name="mobilenet_v2",
        features=lambda x, w, km: mobilenet_v2_backbone(x, alpha=w, km=km),
        dropout=0.0,
    ),
    **{b.name: b for b in (_v3(v, m) for v in ("small", "large") for m in (False, True))},
    **{name: _lite(name) for name in LITE_PARAMS},
}


def get_backbone(name: str) -> Backbone:
    """The backbone called ``name``; ``UsageError`` listing the known ones otherwise."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise UsageError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}") from None


def backbone_features(
    name: str, inputs: Any, width: float | None = None, km: ModuleType | None = None
) -> Features:
    """Build backbone ``name`` on ``inputs`` (width = alpha / width coefficient) -> ``Features``."""
    bb = get_backbone(name)
    return bb.features(
        inputs, bb.default_width if width is None else float(width), keras_module(km)
    )
