"""Representative datasets for full-integer calibration, from real photos.

Images come from a folder (``--calib DIR``) or, by default, from the sample photos that ship
inside installed wheels (matplotlib's ``grace_hopper.jpg``, scikit-image's ``data/*.png``):
real pixel statistics without any download. Random crops and flips stretch a few photos into
``n`` varied samples. Each sample is preprocessed exactly as the runtime does it for this model
(``edgekit.runtime.preprocess.Preprocessor``: resize or letterbox, then ``(pixel - mean) / std``)
so calibration sees the same value ranges as inference. numpy + OpenCV only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from edgekit.core.types import ModelSpec
from edgekit.data.images import IMAGE_SUFFIXES, read_rgb
from edgekit.data.images import list_images as image_files
from edgekit.errors import DatasetError
from edgekit.io.sources import sample_images
from edgekit.runtime.preprocess import Preprocessor, input_lut

LETTERBOX_FILL = 114


def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted); DatasetError when none."""
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"calibration folder {root} does not exist or is not a folder")
    files = image_files(root)
    if not files:
        raise DatasetError(
            f"calibration folder {root} holds no images ({', '.join(IMAGE_SUFFIXES)})"
        )
    return files


def random_crop_flip(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random crop covering 40-100% of the area (aspect 3/4..4/3), flipped half the time."""
    h, w = image.shape[:2]
    area = rng.uniform(0.4, 1.0) * h * w
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    ch = int(min(h, max(8, round(np.sqrt(area / aspect)))))
    cw = int(min(w, max(8, round(np.sqrt(area * aspect)))))
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    out = image[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def float_preprocessor(spec: ModelSpec, channels: int = 3) -> Preprocessor:
    """The runtime preprocessing of ``spec``, producing the float model's input values."""
    return Preprocessor(
        input_hw=tuple(spec.input_size),
        channels=channels,
        resize_mode=spec.resize_mode,
        lut=input_lut(spec.normalization, np.float32, 0.0, 0),
        dtype=np.float32,
        fill=LETTERBOX_FILL if spec.resize_mode == "letterbox" else 0,
    )


def representative_samples(
    spec: ModelSpec,
    n: int = 100,
    *,
    images: Sequence[str | Path] | None = None,
    calib_dir: str | Path | None = None,
    seed: int = 0,
) -> Iterator[np.ndarray]:
    """Yield ``n`` float32 ``[1, H, W, C]`` inputs preprocessed as ``spec`` says.

    The first pass over the photos uses them whole; later samples are random crops/flips.
    """
    if n < 1:
        raise ValueError(f"need at least one calibration sample, got {n}")
    if images is None:
        images = list_images(calib_dir) if calib_dir is not None else sample_images()
    paths = [Path(p) for p in images]
    if not paths:
        raise DatasetError(
            "no calibration images: pass --calib DIR (no sample photos found in matplotlib/scikit-image)"
        )
    prep = float_preprocessor(spec)
    rng = np.random.default_rng(seed)
    cache: dict[Path, np.ndarray] = {}
    for i in range(n):
        path = paths[i % len(paths)]
        if path not in cache:
            if len(cache) >= 32:  # bound memory for big folders
                cache.clear()
            cache[path] = read_rgb(path)
        image = cache[path] if i < len(paths) else random_crop_flip(cache[path], rng)
        tensor, _ = prep(image)
        yield tensor.astype(np.float32, copy=False)
