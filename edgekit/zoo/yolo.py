"""YOLO-tiny: an anchor-free, YOLOv8-style detector on a mobile backbone.

Design, and why:

- **Anchor-free** (one prediction per grid cell, boxes as distances to the cell centre), not
  YOLOv3/v5-style anchors: nothing to tune per dataset, one prediction per cell instead of
  three (smaller heads, a third of the NMS candidates), and the output has exactly the layout of
  third-party YOLOv8 exports, so the runtime's ``"yolo"`` decoder runs ours and theirs alike.
- **No DFL**: the box branch predicts 4 distances ``(l, t, r, b)`` in stride units through a
  ReLU instead of 4x16 bins + softmax + expectation. It costs a little box precision, but the
  head stays Conv2D + ReLU (fully Edge-TPU-mappable, int8-friendly) and the decode is linear.
- **Three scales** (strides 8/16/32) with a light PAN neck (1x1 laterals, nearest upsampling,
  additions, depthwise-separable convs) and **decoupled** box / class branches.
- **Decode in the graph** (``decode=True``): the ``YoloDecode`` layer turns distances into
  ``(cx, cy, w, h)`` with constant grid tables (one matmul with a fixed 4x4 matrix, a multiply
  and an add) and applies the sigmoid, giving ``predictions`` ``[1, 4 + C, N]``. Boxes are
  **normalized to the input** (divide by width/height), as Ultralytics does for TFLite: boxes
  and scores share one tensor, and in int8 a 0..640 pixel range would crush the 0..1 scores.
  NMS can be appended at export ("yolo_nms").
- **Raw variant for training** (``decode=False``): outputs ``box_distances`` ``[1, N, 4]``
  (after the ReLU, stride units) and ``class_logits`` ``[1, N, C]``; ``add_yolo_decode(raw)``
  wraps a trained raw model into the decoded one, sharing its weights.

``N`` orders cells stride 8 first, then 16, then 32, each row-major (y, then x); cell ``(i, j)``
at stride ``s`` has its centre at ``((j + 0.5) s, (i + 0.5) s)`` input pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import keras
import numpy as np

from edgekit.errors import UsageError
from edgekit.zoo.backbones import get_backbone
from edgekit.zoo.layers import conv_bn, dw_bn, head_conv, keras_module, separable_bn, upsample2x
from edgekit.zoo.mobilenet import _input

__all__ = ["STRIDES", "YoloDecode", "add_yolo_decode", "build_yolo_tiny", "yolo_grid"]

STRIDES: tuple[int, ...] = (8, 16, 32)
PRIOR_BIAS = -math.log((1 - 0.01) / 0.01)

# (l, t, r, b) @ M = (cx - px, cy - py, w, h) in stride units.
_LTRB_TO_CXCYWH = np.array(
    [[-0.5, 0.0, 1.0, 0.0], [0.0, -0.5, 0.0, 1.0], [0.5, 0.0, 1.0, 0.0], [0.0, 0.5, 0.0, 1.0]],
    dtype=np.float32,
)


def yolo_grid(
    input_size: Sequence[int], strides: Sequence[int] = STRIDES
) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres ``(N, 2)`` as ``(x, y)`` in stride units and each cell's stride ``(N,)``."""
    h, w = (int(v) for v in input_size)
    points, cell_strides = [], []
    for s in strides:
        gh, gw = math.ceil(h / s), math.ceil(w / s)
        ys, xs = np.meshgrid(
            np.arange(gh, dtype=np.float32), np.arange(gw, dtype=np.float32), indexing="ij"
        )
        points.append(np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], axis=1))
        cell_strides.append(np.full(gh * gw, float(s), dtype=np.float32))
    return np.concatenate(points), np.concatenate(cell_strides)


@keras.saving.register_keras_serializable(package="edgekit")
class YoloDecode(keras.layers.Layer):
    """``(box_distances [B, N, 4], class_logits [B, N, C]) -> [B, 4 + C, N]``.

    Rows 0..3 are ``cx, cy, w, h`` normalized to the input (or in input pixels with
    ``normalized=False``); rows 4.. are sigmoid class scores.
    """

    def __init__(
        self,
        input_size: Sequence[int],
        strides: Sequence[int] = STRIDES,
        normalized: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_size = [int(v) for v in input_size]
        self.strides = [int(s) for s in strides]
        self.normalized = bool(normalized)
        points, cell_strides = yolo_grid(self.input_size, self.strides)
        h, w = self.input_size
        norm = np.array([w, h, w, h], dtype=np.float32) if normalized else np.ones(4, np.float32)
        # out = (ltrb @ M) * scale + offset, per cell.
        self._scale = (cell_strides[:, None] / norm[None, :]).astype(np.float32)
        offset = np.zeros((len(points), 4), dtype=np.float32)
        offset[:, :2] = points * cell_strides[:, None]
        self._offset = (offset / norm[None, :]).astype(np.float32)

    def call(self, box_distances: Any, class_logits: Any) -> Any:
        ops = keras.ops
        boxes = ops.matmul(box_distances, ops.convert_to_tensor(_LTRB_TO_CXCYWH))
        boxes = boxes * ops.convert_to_tensor(self._scale) + ops.convert_to_tensor(self._offset)
        scores = ops.sigmoid(class_logits)
        return ops.transpose(ops.concatenate([boxes, scores], axis=-1), (0, 2, 1))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "input_size": self.input_size,
            "strides": self.strides,
            "normalized": self.normalized,
        }


def build_yolo_tiny(
    num_classes: int = 80,
    input_size: int | tuple[int, int] = 320,
    *,
    backbone: str = "mobilenet_v2",
    width: float | None = 0.5,
    neck_channels: int = 64,
    decode: bool = True,
    km: ModuleType | None = None,
    batch_size: int | None = None,
) -> Any:
    """YOLO-tiny on ``backbone``. ``decode=True``: output ``predictions`` ``[1, 4 + C, N]``;
    ``decode=False``: ``[box_distances [1, N, 4], class_logits [1, N, C]]`` (see module doc).

    ``input_size`` must be a multiple of 32 (the neck adds upsampled maps to finer ones).
    The decoded model is Keras 3 only (custom ``YoloDecode`` layer); the raw one builds with ``km``.
    """
    km = keras_module(km)
    L = km.layers
    if num_classes < 1:
        raise UsageError(f"num_classes must be >= 1, got {num_classes}")
    h, w = (
        (input_size, input_size)
        if isinstance(input_size, int)
        else (int(input_size[0]), int(input_size[1]))
    )
    if h % 32 or w % 32 or min(h, w) < 32:
        raise UsageError(f"YOLO-tiny input must be a multiple of 32, got {h}x{w}")
    bb = get_backbone(backbone)
    inputs = _input((h, w), km, batch_size)
    f = bb.features(inputs, bb.default_width if width is None else float(width), km)
    ch = int(neck_channels)

    def up(x: Any, name: str) -> Any:
        return upsample2x(x, name=name, km=km)

    p5 = conv_bn(f["stride32"], ch, 1, name="neck_lateral_p5", km=km)
    p4 = conv_bn(f["stride16"], ch, 1, name="neck_lateral_p4", km=km)
    p4 = L.Add(name="neck_td_p4_add")([p4, up(p5, "neck_up_p5")])
    p4 = separable_bn(p4, ch, name="neck_td_p4", km=km)
    p3 = conv_bn(f["stride8"], ch, 1, name="neck_lateral_p3", km=km)
    p3 = L.Add(name="neck_td_p3_add")([p3, up(p4, "neck_up_p4")])
    p3 = separable_bn(p3, ch, name="neck_td_p3", km=km)
    n4 = L.Add(name="neck_bu_p4_add")([p4, dw_bn(p3, 3, stride=2, name="neck_down_p3", km=km)])
    n4 = separable_bn(n4, ch, name="neck_bu_p4", km=km)
    n5 = L.Add(name="neck_bu_p5_add")([p5, dw_bn(n4, 3, stride=2, name="neck_down_p4", km=km)])
    n5 = separable_bn(n5, ch, name="neck_bu_p5", km=km)

    boxes, classes = [], []
    for level, x in zip((3, 4, 5), (p3, n4, n5), strict=True):
        cells = int(x.shape[1]) * int(x.shape[2])
        b = separable_bn(x, ch, name=f"head_p{level}_box_conv", km=km)
        b = head_conv(b, 4, name=f"head_p{level}_box", km=km, bias_init=1.0)
        b = L.ReLU(name=f"head_p{level}_box_relu")(b)
        boxes.append(L.Reshape((cells, 4), name=f"head_p{level}_box_reshape")(b))
        c = separable_bn(x, ch, name=f"head_p{level}_cls_conv", km=km)
        c = head_conv(c, num_classes, name=f"head_p{level}_cls", km=km, bias_init=PRIOR_BIAS)
        classes.append(L.Reshape((cells, num_classes), name=f"head_p{level}_cls_reshape")(c))
    box_distances = L.Concatenate(axis=1, name="box_distances")(boxes)
    class_logits = L.Concatenate(axis=1, name="class_logits")(classes)
    # named like its registry entry ("yolo_tiny" on the default backbone), "_raw" undecoded
    name = "yolo_tiny" if backbone == "mobilenet_v2" else f"yolo_tiny_{backbone}"
    raw = km.Model(inputs, [box_distances, class_logits], name=f"{name}_raw")
    return add_yolo_decode(raw) if decode else raw


def add_yolo_decode(raw: Any, *, normalized: bool = True) -> Any:
    """Wrap a raw YOLO-tiny (``box_distances``, ``class_logits``) into the decoded model
    (output ``predictions`` ``[1, 4 + C, N]``), sharing its layers and weights."""
    h, w = (int(v) for v in raw.input_shape[1:3])
    box_distances, class_logits = raw.outputs
    out = YoloDecode((h, w), STRIDES, normalized=normalized, name="predictions")(
        box_distances, class_logits
    )
    return keras.Model(raw.input, out, name=raw.name.removesuffix("_raw"))
