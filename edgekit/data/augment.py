"""Augmentation as TensorFlow ops, keeping boxes and keypoints consistent with the pixels.

Every geometric change (letterbox or stretch to the model input, random scale and crop,
translation, horizontal flip, mosaic crop) is one *window*: ``(y0, x0, y1, x1)`` in normalized
edge coordinates of the source image that becomes the whole output. A window with ``x1 < x0``
is a horizontal flip. Pixels are sampled once (``tf.image.crop_and_resize``, outside the image
filled with ``pad_value``) and targets are mapped with the same affine map, so they cannot
drift apart. TensorFlow is imported inside the functions (this module imports without it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AugmentConfig",
    "apply_window",
    "base_window",
    "color_jitter",
    "flip_index",
    "mosaic4",
    "pad_targets",
    "random_window",
    "transform_targets",
]


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation. ``scale``: zoom range (> 1 enlarges objects); ``aspect``: max log
    aspect-ratio change; ``translate``: move the window within the image; ``flip``: probability
    of a horizontal flip; colour jitter ranges (fractions; ``hue`` in turns); ``mosaic``:
    probability that a training image is a 2x2 mosaic of four; boxes smaller than
    ``min_box_px`` or with less than ``min_visible`` of their area left are dropped."""

    scale: tuple[float, float] = (0.75, 1.33)
    aspect: float = 0.1
    translate: bool = True
    flip: float = 0.5
    brightness: float = 0.15
    contrast: float = 0.2
    saturation: float = 0.3
    hue: float = 0.015
    mosaic: float = 0.0
    min_box_px: float = 2.0
    min_visible: float = 0.25


def flip_index(keypoint_names: Sequence[str]) -> list[int]:
    """Permutation that swaps left/right keypoints after a horizontal flip
    (``flipped[i] = original[index[i]]``). The COCO order uses
    :data:`edgekit.core.keypoints.COCO_FLIP_INDEX`; other names pair ``left_*`` with ``right_*``
    (also ``*_left``/``*_right``), the rest map to themselves."""
    names = list(keypoint_names)
    try:
        from edgekit.core.keypoints import COCO_FLIP_INDEX, COCO_KEYPOINT_NAMES

        if tuple(names) == tuple(COCO_KEYPOINT_NAMES):
            return list(COCO_FLIP_INDEX)
    except ImportError:  # pragma: no cover - core is always there
        pass
    pos = {n: i for i, n in enumerate(names)}
    out = []
    for i, n in enumerate(names):
        mirror = n
        for a, b in (("left", "right"), ("right", "left")):
            if n.startswith(a + "_"):
                mirror = b + n[len(a) :]
            elif n.endswith("_" + a):
                mirror = n[: -len(a)] + b
        out.append(pos.get(mirror, i))
    return out


def base_window(region, src_hw, out_hw: tuple[int, int], resize_mode: str):
    """The window showing ``region`` (y0, x0, y1, x1 normalized source) in the output:
    stretched ("resize") or aspect kept and centred with padding ("letterbox")."""
    import tensorflow as tf

    region = tf.cast(region, tf.float32)
    if resize_mode == "resize":
        return region
    if resize_mode != "letterbox":
        raise ValueError(f"resize_mode must be resize or letterbox, got {resize_mode!r}")
    src_hw = tf.cast(src_hw, tf.float32)
    out_h, out_w = float(out_hw[0]), float(out_hw[1])
    rh = (region[2] - region[0]) * src_hw[0]
    rw = (region[3] - region[1]) * src_hw[1]
    s = tf.minimum(out_h / rh, out_w / rw)
    frac_h = rh * s / out_h  # share of the output height the region fills (<= 1)
    frac_w = rw * s / out_w
    cy = (region[0] + region[2]) / 2
    cx = (region[1] + region[3]) / 2
    half_h = (region[2] - region[0]) / frac_h / 2
    half_w = (region[3] - region[1]) / frac_w / 2
    return tf.stack([cy - half_h, cx - half_w, cy + half_h, cx + half_w])


def random_window(window, region, config: AugmentConfig, seed=None):
    """Randomly zoom, stretch, translate and flip ``window``; ``region`` is the content whose
    bounds translation respects (the window stays inside it when zoomed in, contains it when
    zoomed out)."""
    import tensorflow as tf

    window = tf.cast(window, tf.float32)
    region = tf.cast(region, tf.float32)
    lo, hi = config.scale
    zoom = tf.random.uniform([], lo, hi, seed=seed)
    aspect = (
        tf.exp(tf.random.uniform([], -config.aspect, config.aspect, seed=seed))
        if config.aspect
        else 1.0
    )
    size_h = (window[2] - window[0]) / zoom * tf.sqrt(aspect)
    size_w = (window[3] - window[1]) / zoom / tf.sqrt(aspect)
    cy = (window[0] + window[2]) / 2
    cx = (window[1] + window[3]) / 2
    if config.translate:
        cy = _random_centre(region[0], region[2], size_h, seed)
        cx = _random_centre(region[1], region[3], size_w, seed)
    y0, y1 = cy - size_h / 2, cy + size_h / 2
    x0, x1 = cx - size_w / 2, cx + size_w / 2
    flip = tf.random.uniform([], seed=seed) < config.flip
    x0, x1 = tf.where(flip, x1, x0), tf.where(flip, x0, x1)
    return tf.stack([y0, x0, y1, x1])


def _random_centre(r0, r1, size, seed):
    import tensorflow as tf

    a = r0 + size / 2
    b = r1 - size / 2
    return tf.random.uniform([], tf.minimum(a, b), tf.maximum(a, b) + 1e-6, seed=seed)


def apply_window(image, window, out_hw: tuple[int, int], pad_value: float = 114.0, content_hw=None):
    """Sample ``window`` of ``image`` (H, W, C) into a float32 (out_h, out_w, C) image.

    Edge coordinates: output pixel ``j`` shows source position
    ``x0 + (j + 0.5) / out_w * (x1 - x0)`` (normalized), i.e. exactly what the box transform in
    :func:`transform_targets` assumes. ``content_hw``: how many (fractional) pixels the normalized
    range [0, 1] spans, when it is not the image size (a JPEG decoded at 1/r scale has
    ``ceil(H / r)`` rows for ``H / r`` rows of content).
    """
    import tensorflow as tf

    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    shape = tf.cast(tf.shape(image), tf.float32)
    h, w = shape[0], shape[1]
    ch, cw = (h, w) if content_hw is None else (content_hw[0], content_hw[1])
    y0, x0, y1, x1 = window[0], window[1], window[2], window[3]

    def centres(u0, u1, n_out, n_src, n_content):
        first = u0 + (u1 - u0) * 0.5 / n_out
        last = u0 + (u1 - u0) * (n_out - 0.5) / n_out
        # crop_and_resize maps normalized v to pixel-centre v * (n_src - 1)
        denom = tf.maximum(n_src - 1.0, 1.0)
        return (first * n_content - 0.5) / denom, (last * n_content - 0.5) / denom

    cy0, cy1 = centres(y0, y1, float(out_h), h, ch)
    cx0, cx1 = centres(x0, x1, float(out_w), w, cw)
    box = tf.stack([cy0, cx0, cy1, cx1])[None]
    out = tf.image.crop_and_resize(
        image[None],
        box,
        tf.zeros([1], tf.int32),
        [out_h, out_w],
        method="bilinear",
        extrapolation_value=pad_value,
    )
    return out[0]


def transform_targets(
    boxes,
    class_ids,
    keypoints,
    window,
    out_hw: tuple[int, int],
    *,
    flip_perm: Sequence[int] | None = None,
    min_box_px: float = 2.0,
    min_visible: float = 0.25,
):
    """Map boxes (K, 4) xyxy, class ids (K,) and keypoints (K, P, 3) or None from the source into
    the output of ``window``; drop boxes that end up too small or mostly outside. Keypoints
    outside the output get visibility 0 (and x = y = 0); after a flip (``x1 < x0``) they are
    permuted by ``flip_perm``. Returns (boxes, class_ids, keypoints)."""
    import tensorflow as tf

    boxes = tf.cast(tf.reshape(boxes, [-1, 4]), tf.float32)
    y0, x0, y1, x1 = window[0], window[1], window[2], window[3]
    sx, sy = x1 - x0, y1 - y0
    bx0 = (boxes[:, 0] - x0) / sx
    bx1 = (boxes[:, 2] - x0) / sx
    by0 = (boxes[:, 1] - y0) / sy
    by1 = (boxes[:, 3] - y0) / sy
    nx0, nx1 = tf.minimum(bx0, bx1), tf.maximum(bx0, bx1)
    ny0, ny1 = tf.minimum(by0, by1), tf.maximum(by0, by1)
    area = (nx1 - nx0) * (ny1 - ny0)
    cx0, cx1 = tf.clip_by_value(nx0, 0.0, 1.0), tf.clip_by_value(nx1, 0.0, 1.0)
    cy0, cy1 = tf.clip_by_value(ny0, 0.0, 1.0), tf.clip_by_value(ny1, 0.0, 1.0)
    w_px = (cx1 - cx0) * float(out_hw[1])
    h_px = (cy1 - cy0) * float(out_hw[0])
    visible = (cx1 - cx0) * (cy1 - cy0)
    keep = (w_px >= min_box_px) & (h_px >= min_box_px) & (visible >= min_visible * area)
    out_boxes = tf.boolean_mask(tf.stack([cx0, cy0, cx1, cy1], axis=-1), keep)
    out_ids = tf.boolean_mask(class_ids, keep)
    out_kps = None
    if keypoints is not None:
        kps = tf.cast(keypoints, tf.float32)
        kx = (kps[..., 0] - x0) / sx
        ky = (kps[..., 1] - y0) / sy
        vis = kps[..., 2]
        inside = (kx >= 0) & (kx <= 1) & (ky >= 0) & (ky <= 1)
        vis = tf.where(inside, vis, tf.zeros_like(vis))
        labelled = vis > 0
        kx = tf.where(labelled, kx, tf.zeros_like(kx))
        ky = tf.where(labelled, ky, tf.zeros_like(ky))
        kps = tf.stack([kx, ky, vis], axis=-1)
        if flip_perm is not None:
            perm = tf.constant(list(flip_perm), tf.int32)
            kps = tf.cond(sx < 0, lambda: tf.gather(kps, perm, axis=1), lambda: kps)
        out_kps = tf.boolean_mask(kps, keep)
    return out_boxes, out_ids, out_kps


def pad_targets(boxes, class_ids, keypoints, max_boxes: int, num_keypoints: int | None):
    """Pad (or cut) to ``max_boxes`` rows: boxes 0, class ids -1, keypoints 0; plus the count."""
    import tensorflow as tf

    n = tf.minimum(tf.shape(boxes)[0], max_boxes)
    pad = max_boxes - n
    out = {
        "boxes": tf.ensure_shape(tf.pad(boxes[:n], [[0, pad], [0, 0]]), [max_boxes, 4]),
        "class_ids": tf.ensure_shape(
            tf.pad(tf.cast(class_ids[:n], tf.int32), [[0, pad]], constant_values=-1), [max_boxes]
        ),
        "num_boxes": n,
    }
    if keypoints is not None and num_keypoints is not None:
        out["keypoints"] = tf.ensure_shape(
            tf.pad(keypoints[:n], [[0, pad], [0, 0], [0, 0]]), [max_boxes, num_keypoints, 3]
        )
    return out


def color_jitter(image, config: AugmentConfig, seed=None):
    """Random saturation, hue, contrast and brightness of a float image in 0..255.

    Saturation (blend with luma) and hue (rotation about the luma axis in YIQ) are one 3x3 colour
    matrix, so the whole jitter is a matmul and two scalar ops per image (much cheaper than
    RGB -> HSV -> RGB).
    """
    import math

    import tensorflow as tf

    def uniform(r):
        return tf.random.uniform([], -r, r, seed=seed)

    m = tf.eye(3)
    if config.saturation:
        luma = tf.constant([[0.299, 0.587, 0.114]])
        sat = 1.0 + uniform(config.saturation)
        m = sat * tf.eye(3) + (1.0 - sat) * tf.ones([3, 1]) @ luma
    if config.hue:
        theta = uniform(config.hue) * 2.0 * math.pi
        to_yiq = tf.constant(
            [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]]
        )
        c, s_ = tf.cos(theta), tf.sin(theta)
        rot = tf.stack([[1.0, 0.0, 0.0], tf.stack([0.0, c, -s_]), tf.stack([0.0, s_, c])])
        m = tf.linalg.inv(to_yiq) @ rot @ to_yiq @ m
    x = tf.tensordot(image, tf.transpose(m), axes=1)
    if config.contrast:
        mean = tf.reduce_mean(x)
        x = (x - mean) * (1.0 + uniform(config.contrast)) + mean
    if config.brightness:
        x = x + uniform(config.brightness) * 255.0
    return tf.clip_by_value(x, 0.0, 255.0)


def mosaic4(
    images,
    targets,
    out_hw: tuple[int, int],
    config: AugmentConfig,
    pad_value: float = 114.0,
    count: int = 1,
):
    """``count`` 2x2 mosaics of four (out_h, out_w, 3) images with padded targets (as from
    :func:`pad_targets`, stacked on a leading axis of 4). The canvas is built once; each mosaic
    is a random window of half to all of it, resized to ``out_hw``. Returns (images
    (count, out_h, out_w, 3), padded targets stacked on a leading axis of ``count``)."""
    import tensorflow as tf

    top = tf.concat([images[0], images[1]], axis=1)
    bottom = tf.concat([images[2], images[3]], axis=1)
    canvas = tf.concat([top, bottom], axis=0)
    max_boxes = int(targets["boxes"].shape[1])
    offsets = tf.constant([[0.0, 0.0], [0.5, 0.0], [0.0, 0.5], [0.5, 0.5]])  # (ox, oy) per quadrant
    shift = tf.tile(offsets, [1, 2])[:, None, :]  # (4, 1, 4) as (ox, oy, ox, oy)
    boxes = tf.reshape(targets["boxes"] / 2.0 + shift, [-1, 4])
    ids = tf.reshape(targets["class_ids"], [-1])
    valid = ids >= 0
    kps = None
    num_kp = None
    if "keypoints" in targets:
        kp = targets["keypoints"]
        num_kp = int(kp.shape[2])
        xy = kp[..., :2] / 2.0 + offsets[:, None, None, :]
        xy = tf.where(kp[..., 2:3] > 0, xy, tf.zeros_like(xy))
        kps = tf.boolean_mask(
            tf.reshape(tf.concat([xy, kp[..., 2:3]], -1), [4 * max_boxes, num_kp, 3]), valid
        )
    boxes, ids = tf.boolean_mask(boxes, valid), tf.boolean_mask(ids, valid)
    out_images, out_targets = [], []
    for _ in range(count):
        size = tf.random.uniform([], 0.5, 1.0)
        cy = tf.random.uniform([], size / 2, 1 - size / 2 + 1e-6)
        cx = tf.random.uniform([], size / 2, 1 - size / 2 + 1e-6)
        window = tf.stack([cy - size / 2, cx - size / 2, cy + size / 2, cx + size / 2])
        out_images.append(apply_window(canvas, window, out_hw, pad_value))
        b, c, k = transform_targets(
            boxes,
            ids,
            kps,
            window,
            out_hw,
            min_box_px=config.min_box_px,
            min_visible=config.min_visible,
        )
        out_targets.append(pad_targets(b, c, k, max_boxes, num_kp))
    stacked = {key: tf.stack([t[key] for t in out_targets]) for key in out_targets[0]}
    return tf.stack(out_images), stacked
