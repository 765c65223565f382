"""A tiny generated detection dataset: coloured rectangles on a dark noisy background. The
colour is the class (red, green, blue); the rectangle is the box. Written as YOLO txt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

COLOURS = ((230, 40, 40), (40, 220, 40), (50, 60, 235))
NAMES = ("red", "green", "blue")


def make_shapes(root: Path, n: int = 48, size: int = 64, seed: int = 0, max_objects: int = 1) -> Path:
    """Write ``n`` PNG images with 1..max_objects rectangles and their YOLO labels; returns
    the data.yaml path."""
    import cv2

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
        lines = []
        for _ in range(int(rng.integers(1, max_objects + 1))):
            c = int(rng.integers(0, len(COLOURS)))
            w, h = rng.integers(size // 4, size // 2, 2)
            x0 = int(rng.integers(0, size - w))
            y0 = int(rng.integers(0, size - h))
            img[y0 : y0 + h, x0 : x0 + w] = COLOURS[c]
            lines.append(f"{c} {(x0 + w / 2) / size:.6f} {(y0 + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}")
        cv2.imwrite(str(root / "images" / f"{i:04d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        (root / "labels" / f"{i:04d}.txt").write_text("\n".join(lines) + "\n")
    yaml_path = root / "data.yaml"
    yaml_path.write_text(
        "path: .\ntrain: images\nval: images\nnames:\n" + "".join(f"  {k}: {v}\n" for k, v in enumerate(NAMES))
    )
    return yaml_path


@pytest.fixture(scope="session")
def shapes_data(tmp_path_factory) -> Path:
    return make_shapes(tmp_path_factory.mktemp("shapes"), n=48, size=64)
