"""Fixtures for the compression tests: a tiny synthetic image-folder dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def make_image_folder(root: Path, per_class: int = 10, size: int = 40, seed: int = 0) -> Path:
    """ROOT/<class>/<n>.png with three easy classes: red squares, green discs, blue stripes."""
    import cv2

    rng = np.random.default_rng(seed)
    for name in ("red", "green", "blue"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            c = int(rng.integers(8, size - 8))
            if name == "red":
                img[c - 6 : c + 6, c - 6 : c + 6] = (220, 30, 30)
            elif name == "green":
                cv2.circle(img, (c, size - c), 7, (30, 220, 30), -1)
            else:
                img[:, ::4] = (30, 30, 220)
            cv2.imwrite(str(root / name / f"{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return root


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("folder") / "data")
