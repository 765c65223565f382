"""The ``tf.data`` input pipeline: decode, augment, letterbox/resize and normalize as the model's
:class:`~edgekit.core.types.ModelSpec` says, then a pluggable ``encode_fn`` turns the targets
into what the loss wants (SSD anchor matching, YOLO assignment, pose heatmaps: the training code).

Elements before ``encode_fn``: ``(image, targets)`` with ``image`` float32 (H, W, 3) normalized
``(pixel - mean) / std`` and ``targets`` a dict of ``boxes`` (M, 4) normalized xyxy of the model
input, ``class_ids`` (M,) int32 (-1 = padding), ``num_boxes`` (), ``image_index`` () and, for
keypoint datasets, ``keypoints`` (M, P, 3). Crowd (COCO) and difficult (VOC) objects are left out
of the targets; without augmentation no box is dropped. In ``mode="classify_crops"`` every object becomes
one example ``(crop, class_id)``. TensorFlow is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.data.augment import AugmentConfig
from edgekit.data.dataset import Dataset
from edgekit.errors import DatasetError, DependencyMissing

__all__ = ["PipelineConfig", "make_pipeline", "measure_throughput"]

EncodeFn = Callable[[Any, dict], Any]


@dataclass(frozen=True)
class PipelineConfig:
    """How to feed a model. ``training``: shuffle, augment (``augment``; None = none) and drop
    the last partial batch. ``max_boxes``: targets are padded/cut to this many rows.
    ``mode``: "detect" (whole images with targets) or "classify_crops" (one crop per object,
    the box grown by ``crop_context`` on each side). ``batch_size`` None leaves it unbatched. ``fast_jpeg``: decode JPEGs at 1/2, 1/4 or 1/8
    scale when the output needs no more pixels than that."""

    batch_size: int | None = 16
    training: bool = True
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    max_boxes: int = 100
    mode: str = "detect"
    crop_context: float = 0.1
    shuffle_buffer: int = 1024
    repeat: bool = False
    seed: int | None = None
    pad_value: float = 114.0
    fast_jpeg: bool = True
    num_parallel_calls: int | None = None  # None = AUTOTUNE


def _tf():
    try:
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - train extra installed in CI
        raise DependencyMissing(
            "the input pipeline needs TensorFlow", hint="pip install 'edgekit[train]'"
        ) from exc
    return tf


_JPEG_RATIOS = (1, 2, 4, 8)


def _decode_window(data, out_hw, window_fn, fast_jpeg: bool):
    """Decode image bytes and pick the window for them: ``window_fn(src_hw) -> window``.

    JPEGs (with ``fast_jpeg``) are decoded at the largest 1/r scale (r in 1, 2, 4, 8, libjpeg's
    DCT scaling) that still gives at least one source pixel per output pixel: faster, and an
    antialiased shrink. Returns (image, window, content_hw).
    """
    tf = _tf()

    def other():
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image = tf.ensure_shape(image, [None, None, 3])
        hw = tf.cast(tf.shape(image)[:2], tf.float32)
        return image, window_fn(hw), hw

    if not fast_jpeg:
        return other()

    def jpeg():
        hw = tf.cast(tf.io.extract_jpeg_shape(data)[:2], tf.float32)
        window = window_fn(hw)
        per_out = tf.minimum(
            tf.abs(window[2] - window[0]) * hw[0] / out_hw[0],
            tf.abs(window[3] - window[1]) * hw[1] / out_hw[1],
        )
        index = sum(tf.cast(per_out >= r, tf.int32) for r in _JPEG_RATIOS[1:])
        branches = [
            (lambda r=r: tf.io.decode_jpeg(data, channels=3, ratio=r, dct_method="INTEGER_FAST"))
            for r in _JPEG_RATIOS
        ]
        image = tf.ensure_shape(tf.switch_case(index, branches), [None, None, 3])
        ratio = tf.gather(tf.constant(_JPEG_RATIOS, tf.float32), index)
        return image, window, hw / ratio

    return tf.cond(tf.io.is_jpeg(data), jpeg, other)


def _flat_targets(dataset: Dataset):
    """Concatenate every image's objects (crowd/difficult ones left out: they are for evaluation
    to ignore, not to learn from); ``offsets[i]:offsets[i + 1]`` is image i's slice."""
    keep = [~r.iscrowd for r in dataset.images]
    counts = np.array([int(k.sum()) for k in keep], np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    boxes = np.concatenate(
        [r.boxes[k] for r, k in zip(dataset.images, keep, strict=True)]
        + [np.zeros((0, 4), np.float32)]
    ).astype(np.float32)
    ids = np.concatenate(
        [r.class_ids[k] for r, k in zip(dataset.images, keep, strict=True)]
        + [np.zeros(0, np.int64)]
    ).astype(np.int32)
    kps = None
    if dataset.keypoint_names:
        p = len(dataset.keypoint_names)
        parts = [
            r.keypoints[k]
            if r.keypoints is not None
            else np.zeros((int(k.sum()), p, 3), np.float32)
            for r, k in zip(dataset.images, keep, strict=True)
        ]
        kps = np.concatenate([*parts, np.zeros((0, p, 3), np.float32)]).astype(np.float32)
    return offsets, boxes, ids, kps


def make_pipeline(
    dataset: Dataset,
    spec=None,
    config: PipelineConfig | None = None,
    *,
    input_size: tuple[int, int] | None = None,
    resize_mode: str | None = None,
    normalization: tuple[float, float] | None = None,
    encode_fn: EncodeFn | None = None,
):
    """A ``tf.data.Dataset`` over ``dataset`` shaped for a model.

    ``spec`` (a ModelSpec) gives ``input_size`` (h, w), ``resize_mode`` ("resize" or
    "letterbox") and ``normalization`` (mean, std); the keyword arguments override it.
    ``encode_fn(image, targets) -> element`` runs per example after augmentation, before
    batching (default: the ``(image, targets)`` pair itself).
    """
    tf = _tf()
    from edgekit.data import augment as aug

    config = config or PipelineConfig()
    size = input_size or (spec.input_size if spec is not None else None)
    if size is None:
        raise DatasetError("make_pipeline needs a ModelSpec or input_size")
    out_hw = (int(size[0]), int(size[1]))
    mode = resize_mode or (spec.resize_mode if spec is not None else "letterbox")
    mean, std = normalization or (spec.normalization if spec is not None else (0.0, 1.0))
    if len(dataset) == 0:
        raise DatasetError("make_pipeline: the dataset has no images")
    if config.mode not in ("detect", "classify_crops"):
        raise DatasetError(
            f"make_pipeline: mode must be detect or classify_crops, got {config.mode!r}"
        )
    augment = config.augment if config.training else None
    par = tf.data.AUTOTUNE if config.num_parallel_calls is None else config.num_parallel_calls

    paths = tf.constant([str(r.path) for r in dataset.images])
    offsets_np, boxes_np, ids_np, kps_np = _flat_targets(dataset)
    offsets, all_boxes, all_ids = (
        tf.constant(offsets_np),
        tf.constant(boxes_np),
        tf.constant(ids_np),
    )
    all_kps = None if kps_np is None else tf.constant(kps_np)
    num_kp = None if kps_np is None else int(kps_np.shape[1])
    perm = aug.flip_index(dataset.keypoint_names) if dataset.keypoint_names else None

    def window_fn(region):
        def fn(src_hw):
            window = aug.base_window(region, src_hw, out_hw, mode)
            if augment is not None:
                window = aug.random_window(window, region, augment, seed=config.seed)
            return window

        return fn

    def geometry(path, region):
        data = tf.io.read_file(path)
        image, window, content_hw = _decode_window(
            data, out_hw, window_fn(region), config.fast_jpeg
        )
        out = aug.apply_window(image, window, out_hw, config.pad_value, content_hw)
        if augment is not None:
            out = aug.color_jitter(out, augment, seed=config.seed)
        return tf.ensure_shape(out, [*out_hw, 3]), window

    def load_detect(index):
        full = tf.constant([0.0, 0.0, 1.0, 1.0])
        out, window = geometry(paths[index], full)
        lo, hi = offsets[index], offsets[index + 1]
        kps = None if all_kps is None else all_kps[lo:hi]
        kw = {"min_box_px": 0.0, "min_visible": 0.0}  # without augmentation every box is kept
        if augment is not None:
            kw = {"min_box_px": augment.min_box_px, "min_visible": augment.min_visible}
        boxes, ids, kps = aug.transform_targets(
            all_boxes[lo:hi], all_ids[lo:hi], kps, window, out_hw, flip_perm=perm, **kw
        )
        targets = aug.pad_targets(boxes, ids, kps, config.max_boxes, num_kp)
        targets["image_index"] = tf.cast(index, tf.int32)
        return out, targets

    def finish(image, targets):
        image = (image - mean) / std
        if encode_fn is None:
            return image, targets
        return encode_fn(image, targets)

    if config.mode == "classify_crops":
        return _crops_pipeline(dataset, config, augment, geometry, paths, finish, par)

    ds = tf.data.Dataset.range(len(dataset))
    if config.training:
        ds = ds.shuffle(
            min(config.shuffle_buffer, len(dataset)),
            seed=config.seed,
            reshuffle_each_iteration=True,
        )
    if config.repeat:
        ds = ds.repeat()
    ds = ds.map(load_detect, num_parallel_calls=par, deterministic=not config.training)
    if augment is not None and augment.mosaic > 0:
        prob = float(augment.mosaic)

        def maybe_mosaic(images, targets):
            def mosaics():
                tg = {key: v for key, v in targets.items() if key != "image_index"}
                out, t = aug.mosaic4(images, tg, out_hw, augment, config.pad_value, count=4)
                t["image_index"] = targets["image_index"]
                return out, t

            return tf.cond(
                tf.random.uniform([], seed=config.seed) < prob, mosaics, lambda: (images, targets)
            )

        ds = ds.batch(4, drop_remainder=True).map(maybe_mosaic, num_parallel_calls=par).unbatch()
    ds = ds.map(finish, num_parallel_calls=par)
    if config.batch_size:
        ds = ds.batch(config.batch_size, drop_remainder=config.training)
    return ds.prefetch(tf.data.AUTOTUNE)


def _crops_pipeline(
    dataset: Dataset, config: PipelineConfig, augment, geometry, paths, finish, par
):
    """One example per object: the box grown by ``crop_context``, as the whole output."""
    tf = _tf()
    rows = [
        (i, k)
        for i, r in enumerate(dataset.images)
        for k in range(r.num_objects)
        if not r.iscrowd[k]
    ]
    if not rows:
        raise DatasetError("make_pipeline: classify_crops needs boxes, and the dataset has none")
    img_idx = np.array([i for i, _ in rows], np.int64)
    regions = np.stack([dataset.images[i].boxes[k] for i, k in rows]).astype(np.float32)
    c = config.crop_context
    w = regions[:, 2] - regions[:, 0]
    h = regions[:, 3] - regions[:, 1]
    grown = np.stack(
        [
            regions[:, 1] - c * h,
            regions[:, 0] - c * w,
            regions[:, 3] + c * h,
            regions[:, 2] + c * w,
        ],
        1,
    )
    labels = np.array([dataset.images[i].class_ids[k] for i, k in rows], np.int32)

    def load_crop(index, region, label):
        out, _ = geometry(paths[index], region)
        return finish(out, label)

    ds = tf.data.Dataset.from_tensor_slices((img_idx, grown.astype(np.float32), labels))
    if config.training:
        ds = ds.shuffle(
            min(config.shuffle_buffer, len(rows)), seed=config.seed, reshuffle_each_iteration=True
        )
    if config.repeat:
        ds = ds.repeat()
    ds = ds.map(load_crop, num_parallel_calls=par, deterministic=not config.training)
    if config.batch_size:
        ds = ds.batch(config.batch_size, drop_remainder=config.training)
    return ds.prefetch(tf.data.AUTOTUNE)


def measure_throughput(
    ds, *, warmup_batches: int = 2, max_batches: int | None = None
) -> dict[str, float]:
    """Iterate a (batched) pipeline and report images/s after ``warmup_batches``: wall-clock
    ``images_per_s`` and ``images_per_cpu_s`` (per second of this process's CPU time, all
    threads: a figure that depends less on what else the machine is running)."""
    import time

    n_images = 0
    batches = 0
    start = cpu_start = None
    for element in ds:
        image = element[0] if isinstance(element, tuple) else element
        batches += 1
        if batches == warmup_batches:
            start, cpu_start = time.perf_counter(), time.process_time()
            continue
        if start is not None:
            n_images += int(image.shape[0])
        if max_batches is not None and batches >= max_batches:
            break
    if start is None or n_images == 0:
        raise DatasetError("measure_throughput: not enough batches to measure")
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    return {
        "images": float(n_images),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "images_per_s": n_images / seconds,
        "images_per_cpu_s": n_images / cpu if cpu > 0 else float("nan"),
    }
