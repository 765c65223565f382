"""Calibration samples: real photos, random crops/flips, preprocessed exactly like the runtime."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.core.types import ModelSpec
from edgekit.data.images import read_rgb
from edgekit.errors import DatasetError
from edgekit.export.representative import list_images, random_crop_flip, representative_samples
from edgekit.io.sources import sample_images as sample_photos
from edgekit.runtime.preprocess import Preprocessor


@pytest.fixture
def photos():
    found = sample_photos()
    if not found:
        pytest.skip("no sample photos in matplotlib/scikit-image")
    return found


@pytest.mark.parametrize(("mode", "fill"), [("resize", 0), ("letterbox", 114)])
def test_first_samples_match_runtime_preprocessing(photos, mode, fill):
    decoder = "yolo" if mode == "letterbox" else "classify"
    spec = ModelSpec(
        task="detect" if decoder == "yolo" else "classify",
        decoder=decoder,
        input_size=(48, 64),
        normalization=(127.5, 127.5),
        resize_mode=mode,
    )
    samples = list(representative_samples(spec, len(photos)))
    assert len(samples) == len(photos)
    # the runtime's uint8 path (identity table) then the float normalization by hand
    runtime = Preprocessor(input_hw=(48, 64), resize_mode=mode, fill=fill)
    for path, sample in zip(photos, samples, strict=True):
        pixels, _ = runtime(read_rgb(path))
        assert sample.shape == (1, 48, 64, 3) and sample.dtype == np.float32
        np.testing.assert_allclose(sample, (pixels.astype(np.float32) - 127.5) / 127.5, atol=1e-6)


def test_more_samples_than_photos_are_varied_and_deterministic(photos):
    spec = ModelSpec(
        task="classify", decoder="classify", input_size=(32, 32), normalization=(0.0, 255.0)
    )
    a = list(representative_samples(spec, len(photos) * 3, seed=3))
    b = list(representative_samples(spec, len(photos) * 3, seed=3))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    extra = a[len(photos) :]
    assert len({x.tobytes() for x in extra}) == len(extra)  # crops differ
    assert all(float(x.min()) >= 0.0 and float(x.max()) <= 1.0 for x in a)


def test_random_crop_flip_bounds():
    rng = np.random.default_rng(0)
    img = np.arange(60 * 80 * 3, dtype=np.uint8).reshape(60, 80, 3)
    for _ in range(50):
        out = random_crop_flip(img, rng)
        assert 8 <= out.shape[0] <= 60 and 8 <= out.shape[1] <= 80 and out.shape[2] == 3
        assert out.shape[0] * out.shape[1] >= 0.3 * 60 * 80


def test_calibration_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        list_images(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("no images")
    with pytest.raises(DatasetError, match="holds no images"):
        list_images(tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    spec = ModelSpec(task="classify", decoder="classify", input_size=(8, 8))
    with pytest.raises(DatasetError, match="cannot read image"):
        list(representative_samples(spec, 2, calib_dir=tmp_path))
