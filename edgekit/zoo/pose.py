"""A MoveNet-style single-person pose model: backbone, a small FPN up to stride 4, four heads,
and (optionally) the MoveNet decode inside the graph.

Raw heads (``decode=False``; all ``[1, H/4, W/4, ...]``, grid units = cells of the stride-4 map):

- ``center_heatmap`` (1, sigmoid): the person centre.
- ``keypoint_regression`` (2K): per cell, ``(dy, dx)`` from that cell to each keypoint.
- ``keypoint_heatmaps`` (K, sigmoid): each keypoint's location.
- ``keypoint_offsets`` (2K): per cell, sub-cell ``(oy, ox)`` in [0, 1) of each keypoint.

Channel ``2k`` is y and ``2k + 1`` is x of keypoint ``k`` (COCO order, K = 17).
A keypoint at normalized ``(y, x)`` sits at grid position ``(y * Hg, x * Wg)``: cell ``floor``
of that, offset its fractional part.

Decode (``decode=True``, layer ``MoveNetDecode``, output ``keypoints`` ``[1, 1, K, 3]`` as
``(y, x, score)`` normalized to the input, the output of Google's MoveNet, decoder "movenet"):

1. centre cell = argmax of ``center_heatmap / (1 + distance to the grid centre)``;
2. regressed keypoints = centre cell + ``keypoint_regression`` at the centre cell;
3. keypoint cell = argmax of ``keypoint_heatmaps / (distance to the regressed keypoint + 1.8)``;
4. ``y = (cell_y + oy) / Hg``, ``x = (cell_x + ox) / Wg`` clipped to [0, 1]; score = the
   (unweighted) heatmap value at that cell.

Argmax/gather are ARG_MAX + GATHER: builtin TFLite ops (0.06 ms at a 32x32 grid on one core,
where a one-hot product summed over the grid took 0.46 ms). They sit after the heads, so this
post-processing tail runs on CPU by design when the body is compiled for the Edge TPU.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import keras
import numpy as np

from edgekit.errors import UsageError
from edgekit.zoo.backbones import get_backbone
from edgekit.zoo.layers import (
    activation,
    argmax,
    conv_bn,
    head_conv,
    keras_module,
    separable_bn,
    take_rows,
    upsample2x,
)
from edgekit.zoo.mobilenet import _input

__all__ = ["NUM_KEYPOINTS", "MoveNetDecode", "add_movenet_decode", "build_movenet"]

NUM_KEYPOINTS = 17
KEYPOINT_DISTANCE_BIAS = 1.8
HEATMAP_PRIOR = -math.log((1 - 0.1) / 0.1)  # CenterNet's -2.19
RAW_OUTPUTS = ("center_heatmap", "keypoint_regression", "keypoint_heatmaps", "keypoint_offsets")


def center_weights(grid: tuple[int, int]) -> np.ndarray:
    """``(Hg*Wg,)`` weights ``1 / (1 + distance from the grid centre)``, row-major."""
    gh, gw = grid
    ys, xs = np.meshgrid(
        np.arange(gh, dtype=np.float32), np.arange(gw, dtype=np.float32), indexing="ij"
    )
    d = np.sqrt((ys - (gh - 1) / 2.0) ** 2 + (xs - (gw - 1) / 2.0) ** 2)
    return (1.0 / (1.0 + d)).ravel().astype(np.float32)


@keras.saving.register_keras_serializable(package="edgekit")
class MoveNetDecode(keras.layers.Layer):
    """``(center [B,H,W,1], regression [B,H,W,2K], heatmaps [B,H,W,K], offsets [B,H,W,2K])
    -> [B, 1, K, 3]`` (y, x, score), see the module docstring."""

    def __init__(self, num_keypoints: int = NUM_KEYPOINTS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_keypoints = int(num_keypoints)

    def call(self, center: Any, regression: Any, heatmaps: Any, offsets: Any) -> Any:
        ops = keras.ops
        gh, gw = int(center.shape[1]), int(center.shape[2])
        k, hw = self.num_keypoints, gh * gw
        ys_np, xs_np = np.meshgrid(
            np.arange(gh, dtype=np.float32), np.arange(gw, dtype=np.float32), indexing="ij"
        )
        ys = ops.convert_to_tensor(ys_np.reshape(hw))
        xs = ops.convert_to_tensor(xs_np.reshape(hw))

        c = ops.reshape(center, (-1, hw)) * ops.convert_to_tensor(center_weights((gh, gw))[None])
        c_idx = argmax(c, axis=-1)  # (B,)
        reg_c = take_rows(ops.reshape(regression, (-1, hw, 2 * k)), c_idx)  # (B, 2K)
        reg_c = ops.reshape(reg_c, (-1, k, 2))
        ky = ops.expand_dims(ops.expand_dims(ops.take(ys, c_idx), -1) + reg_c[:, :, 0], 1)
        kx = ops.expand_dims(ops.expand_dims(ops.take(xs, c_idx), -1) + reg_c[:, :, 1], 1)

        hm = ops.reshape(heatmaps, (-1, hw, k))
        dist = ops.sqrt(ops.square(ys[None, :, None] - ky) + ops.square(xs[None, :, None] - kx))
        k_idx = argmax(hm / (dist + KEYPOINT_DISTANCE_BIAS), axis=1)  # (B, K)
        # keypoint j's cell in the (HW * K) flattening of the offsets
        flat_idx = k_idx * k + ops.convert_to_tensor(np.arange(k, dtype=np.int32)[None])
        # score: keypoint j's own heatmap at its cell, the diagonal of the (B, K, K) rows at the
        # K cells. (Not a gather from a flattened copy: a second reader of the heatmaps' sigmoid
        # makes the int8 converter round it to 1/256 steps before the argmax.)
        eye = ops.convert_to_tensor(np.eye(k, dtype=np.float32)[None])
        score = ops.sum(take_rows(hm, k_idx) * eye, axis=-1)  # (B, K)
        off = take_rows(ops.reshape(offsets, (-1, hw * k, 2)), flat_idx)  # (B, K, 2)
        y = ops.clip((ops.take(ys, k_idx) + off[:, :, 0]) / float(gh), 0.0, 1.0)
        x = ops.clip((ops.take(xs, k_idx) + off[:, :, 1]) / float(gw), 0.0, 1.0)
        return ops.reshape(ops.stack([y, x, score], axis=-1), (-1, 1, k, 3))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_keypoints": self.num_keypoints}


def build_movenet(
    input_size: int | tuple[int, int] = 192,
    *,
    backbone: str = "mobilenet_v2",
    width: float | None = None,
    fpn_channels: int = 64,
    num_keypoints: int = NUM_KEYPOINTS,
    decode: bool = True,
    km: ModuleType | None = None,
    batch_size: int | None = None,
) -> Any:
    """MoveNet-style pose model. ``decode=True``: output ``keypoints`` ``[1, 1, K, 3]``;
    ``decode=False``: the four raw heads (module docstring). Input a multiple of 32.
    The decoded model is Keras 3 only (custom ``MoveNetDecode`` layer); the raw one builds with ``km``.
    """
    km = keras_module(km)
    L = km.layers
    h, w = (
        (input_size, input_size)
        if isinstance(input_size, int)
        else (int(input_size[0]), int(input_size[1]))
    )
    if h % 32 or w % 32 or min(h, w) < 32:
        raise UsageError(f"pose model input must be a multiple of 32, got {h}x{w}")
    if num_keypoints < 1:
        raise UsageError(f"num_keypoints must be >= 1, got {num_keypoints}")
    bb = get_backbone(backbone)
    inputs = _input((h, w), km, batch_size)
    f = bb.features(inputs, bb.default_width if width is None else float(width), km)
    ch = int(fpn_channels)
    p = conv_bn(f["stride32"], ch, 1, name="fpn_lateral_s32", km=km)
    for s in (16, 8, 4):
        lateral = conv_bn(f[f"stride{s}"], ch, 1, name=f"fpn_lateral_s{s}", km=km)
        up = upsample2x(p, name=f"fpn_up_s{s}", km=km)
        p = L.Add(name=f"fpn_s{s}_add")([lateral, up])
        p = separable_bn(p, ch, name=f"fpn_s{s}", km=km)

    def head(name: str, out_ch: int, act: str | None, bias: float = 0.0) -> Any:
        x = separable_bn(p, ch, name=f"{name}_conv", km=km)
        if act is None:
            return head_conv(x, out_ch, name=name, km=km, bias_init=bias)
        x = head_conv(x, out_ch, name=f"{name}_logits", km=km, bias_init=bias)
        return activation(x, act, name, km)

    k = int(num_keypoints)
    raw_outputs = [
        head("center_heatmap", 1, "sigmoid", HEATMAP_PRIOR),
        head("keypoint_regression", 2 * k, None),
        head("keypoint_heatmaps", k, "sigmoid", HEATMAP_PRIOR),
        head("keypoint_offsets", 2 * k, None, 0.5),
    ]
    raw = km.Model(inputs, raw_outputs, name=f"movenet_{backbone}_raw")
    return add_movenet_decode(raw) if decode else raw


def add_movenet_decode(raw: Any) -> Any:
    """Wrap a raw pose model (the four heads, in ``RAW_OUTPUTS`` order) into the decoded model
    (output ``keypoints`` ``[1, 1, K, 3]``), sharing its layers and weights."""
    center, regression, heatmaps, offsets = raw.outputs
    k = int(heatmaps.shape[-1])
    out = MoveNetDecode(k, name="keypoints")(center, regression, heatmaps, offsets)
    return keras.Model(raw.input, out, name=raw.name.removesuffix("_raw"))
