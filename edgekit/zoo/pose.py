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

Argmax/gather are ARG_MAX + ONE_HOT + MUL + SUM: builtin TFLite ops. They sit after the heads,
so this post-processing tail runs on CPU by design when the body is compiled for the Edge TPU.
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
        ys = ops.convert_to_tensor(ys_np.reshape(1, hw, 1))
        xs = ops.convert_to_tensor(xs_np.reshape(1, hw, 1))

        c = ops.reshape(center, (-1, hw)) * ops.convert_to_tensor(center_weights((gh, gw))[None])
        c_onehot = ops.expand_dims(ops.one_hot(argmax(c, axis=-1), hw), -1)  # (B, HW, 1)
        cy = ops.sum(c_onehot * ys, axis=1)  # (B, 1)
        cx = ops.sum(c_onehot * xs, axis=1)
        reg = ops.reshape(regression, (-1, hw, 2 * k))
        reg_c = ops.sum(c_onehot * reg, axis=1)  # (B, 2K)
        reg_c = ops.reshape(reg_c, (-1, k, 2))
        ky = ops.expand_dims(cy + reg_c[:, :, 0], 1)  # (B, 1, K)
        kx = ops.expand_dims(cx + reg_c[:, :, 1], 1)

        hm = ops.reshape(heatmaps, (-1, hw, k))
        dist = ops.sqrt(ops.square(ys - ky) + ops.square(xs - kx))  # (B, HW, K)
        weighted = hm / (dist + KEYPOINT_DISTANCE_BIAS)
        k_idx = argmax(weighted, axis=1)  # (B, K)
        k_onehot = ops.transpose(ops.one_hot(k_idx, hw), (0, 2, 1))  # (B, HW, K)
        py = ops.sum(k_onehot * ys, axis=1)  # (B, K)
        px = ops.sum(k_onehot * xs, axis=1)
        score = ops.sum(k_onehot * hm, axis=1)
        off = ops.reshape(offsets, (-1, hw, k, 2))
        oy = ops.sum(k_onehot * off[:, :, :, 0], axis=1)
        ox = ops.sum(k_onehot * off[:, :, :, 1], axis=1)
        y = ops.clip((py + oy) / float(gh), 0.0, 1.0)
        x = ops.clip((px + ox) / float(gw), 0.0, 1.0)
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
