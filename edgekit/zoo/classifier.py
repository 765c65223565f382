"""A classifier on any backbone: global average pool -> dropout -> dense softmax ``[1, N]``.

(MobileNetV3 adds its 1280/1024-unit dense layer before the dropout, as the reference does.)
Output layer ``predictions``; input ``image``, float pixels normalized per the backbone.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from edgekit.errors import UsageError
from edgekit.zoo.backbones import get_backbone
from edgekit.zoo.layers import classifier_head, keras_module
from edgekit.zoo.mobilenet import _input

__all__ = ["build_classifier"]


def build_classifier(
    backbone: str = "mobilenet_v2",
    input_size: int | tuple[int, int] | None = None,
    num_classes: int = 1000,
    *,
    width: float | None = None,
    dropout: float | None = None,
    km: ModuleType | None = None,
    batch_size: int | None = None,
) -> Any:
    """Backbone ``backbone`` + classifier head -> ``keras.Model`` named after the backbone."""
    km = keras_module(km)
    if num_classes < 1:
        raise UsageError(f"num_classes must be >= 1, got {num_classes}")
    bb = get_backbone(backbone)
    w = bb.default_width if width is None else float(width)
    inputs = _input(input_size or bb.default_input_size, km, batch_size)
    f = bb.features(inputs, w, km)
    out = classifier_head(
        f["stride32"],
        num_classes,
        dropout=bb.dropout if dropout is None else dropout,
        km=km,
        **bb.head(w),
    )
    return km.Model(inputs, out, name=backbone)
