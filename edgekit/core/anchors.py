"""SSD anchor (prior box) generation. numpy only: the runtime regenerates the exact anchors a
model was trained with from the generator keyword arguments embedded in its spec.

Follows the TF Object Detection API ``create_ssd_anchors`` + ``MultipleGridAnchorGenerator``
(the generator of the SSD/SSDLite MobileNet models): linearly spaced scales between
``min_scale`` and ``max_scale``, one box per aspect ratio plus an extra box at the geometric
mean of this layer's scale and the next one, and only three boxes in the lowest layer.

Anchors are ``(cy, cx, h, w)`` normalized to the model input, ordered feature map by feature
map, then row-major over the grid (y, then x), then box spec: exactly the order in which an SSD
head's ``[1, H, W, n*4]`` output reshapes to ``[1, H*W*n, 4]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["anchor_box_specs", "num_anchors_per_location", "ssd_anchors", "ssd_feature_sizes"]

DEFAULT_ASPECT_RATIOS: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)


def _pair(size: int | Sequence[int], what: str) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        pair = (int(size), int(size))
    else:
        vals = tuple(int(v) for v in size)
        if len(vals) != 2:
            raise ValueError(f"{what} must be an int or (height, width), got {size!r}")
        pair = vals
    if min(pair) <= 0:
        raise ValueError(f"{what} must be positive, got {size!r}")
    return pair  # type: ignore[return-value]


def ssd_feature_sizes(
    input_size: int | Sequence[int], num_layers: int = 6, first_stride: int = 16
) -> list[tuple[int, int]]:
    """Grid sizes of an SSD's feature maps: stride ``first_stride`` then halving ("same" padding).

    For SSDLite on a MobileNet at 320x320: [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)].
    """
    h, w = _pair(input_size, "input_size")
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    sizes = [(math.ceil(h / first_stride), math.ceil(w / first_stride))]
    for _ in range(num_layers - 1):
        ph, pw = sizes[-1]
        sizes.append((math.ceil(ph / 2), math.ceil(pw / 2)))
    return sizes


def anchor_box_specs(
    num_layers: int,
    min_scale: float = 0.2,
    max_scale: float = 0.95,
    aspect_ratios: Sequence[float] = DEFAULT_ASPECT_RATIOS,
    interpolated_scale_aspect_ratio: float = 1.0,
    reduce_boxes_in_lowest_layer: bool = True,
) -> list[list[tuple[float, float]]]:
    """Per feature map, the list of ``(scale, aspect_ratio)`` box specs (TF OD API semantics)."""
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    if not (0 < min_scale <= max_scale):
        raise ValueError(f"need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
    if not aspect_ratios or min(aspect_ratios) <= 0:
        raise ValueError(f"aspect_ratios must be positive, got {tuple(aspect_ratios)}")
    if num_layers == 1:
        scales = [min_scale]
    else:
        scales = [
            min_scale + (max_scale - min_scale) * i / (num_layers - 1) for i in range(num_layers)
        ]
    scales.append(1.0)
    specs: list[list[tuple[float, float]]] = []
    for layer in range(num_layers):
        scale, scale_next = scales[layer], scales[layer + 1]
        if layer == 0 and reduce_boxes_in_lowest_layer:
            layer_specs = [(0.1, 1.0), (scale, 2.0), (scale, 0.5)]
        else:
            layer_specs = [(scale, float(ar)) for ar in aspect_ratios]
            if interpolated_scale_aspect_ratio > 0.0:
                layer_specs.append(
                    (math.sqrt(scale * scale_next), float(interpolated_scale_aspect_ratio))
                )
        specs.append(layer_specs)
    return specs


def num_anchors_per_location(num_layers: int, **spec_kwargs: object) -> list[int]:
    """How many boxes each feature map predicts per grid cell (the SSD head's ``n``)."""
    return [len(s) for s in anchor_box_specs(num_layers, **spec_kwargs)]  # type: ignore[arg-type]


def ssd_anchors(
    input_size: int | Sequence[int],
    feature_sizes: Sequence[Sequence[int] | int] | None = None,
    min_scale: float = 0.2,
    max_scale: float = 0.95,
    aspect_ratios: Sequence[float] = DEFAULT_ASPECT_RATIOS,
    interpolated_scale_aspect_ratio: float = 1.0,
    reduce_boxes_in_lowest_layer: bool = True,
    base_anchor_size: Sequence[float] = (1.0, 1.0),
) -> np.ndarray:
    """Anchors ``(A, 4)`` as ``(cy, cx, h, w)`` normalized to the input, float32.

    ``feature_sizes`` lists each feature map's grid ``(h, w)`` (or an int for square grids);
    None derives the SSDLite layout from ``input_size`` (see ``ssd_feature_sizes``). Box shapes
    are normalized to the input's height and width, as the TF OD API does with square inputs:
    for a non-square input an aspect ratio of 1 is square in normalized, not pixel, units.
    """
    _pair(input_size, "input_size")
    if feature_sizes is None:
        feature_sizes = ssd_feature_sizes(input_size)
    grids = [_pair(s, "feature size") for s in feature_sizes]
    specs = anchor_box_specs(
        len(grids),
        min_scale=min_scale,
        max_scale=max_scale,
        aspect_ratios=aspect_ratios,
        interpolated_scale_aspect_ratio=interpolated_scale_aspect_ratio,
        reduce_boxes_in_lowest_layer=reduce_boxes_in_lowest_layer,
    )
    base_h, base_w = (float(v) for v in base_anchor_size)
    out = []
    for (gh, gw), layer_specs in zip(grids, specs, strict=True):
        scales = np.array([s for s, _ in layer_specs], dtype=np.float64)
        ratio_sqrt = np.sqrt(np.array([r for _, r in layer_specs], dtype=np.float64))
        heights = scales / ratio_sqrt * base_h
        widths = scales * ratio_sqrt * base_w
        stride_y, stride_x = 1.0 / gh, 1.0 / gw
        cy = (np.arange(gh) + 0.5) * stride_y
        cx = (np.arange(gw) + 0.5) * stride_x
        n = len(layer_specs)
        grid = np.empty((gh, gw, n, 4), dtype=np.float64)
        grid[..., 0] = cy[:, None, None]
        grid[..., 1] = cx[None, :, None]
        grid[..., 2] = heights[None, None, :]
        grid[..., 3] = widths[None, None, :]
        out.append(grid.reshape(-1, 4))
    return np.concatenate(out, axis=0).astype(np.float32)


def anchors_from_params(params: dict) -> np.ndarray:
    """The ``(A, 4)`` (cy, cx, h, w) anchors an ``ssd_raw`` spec's ``decoder_params`` describe.

    Accepts the generator's keyword arguments (what the zoo embeds) under ``"anchors"`` or
    ``"anchor_config"``, or an explicit list of anchors under ``"anchors"``.
    Raises ``ValueError`` when neither is present.
    """
    anchors = params.get("anchors")
    if isinstance(anchors, dict):
        return np.asarray(ssd_anchors(**anchors), dtype=np.float32)
    if anchors is not None:
        return np.asarray(anchors, dtype=np.float32).reshape(-1, 4)
    if isinstance(params.get("anchor_config"), dict):
        return np.asarray(ssd_anchors(**params["anchor_config"]), dtype=np.float32)
    raise ValueError("ssd_raw spec has neither 'anchors' nor 'anchor_config'")
