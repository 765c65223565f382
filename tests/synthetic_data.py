"""Tiny generated datasets for the train and CLI tests (fixtures ``shapes_data``, ``shapes160``,
``people_data``, imported by their conftest.py). A detection dataset: coloured rectangles on a
dark noisy background; the colour is the class (red, green, blue), the rectangle the box.
Written as YOLO txt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

COLOURS = ((230, 40, 40), (40, 220, 40), (50, 60, 235))
NAMES = ("red", "green", "blue")


def make_shapes(
    root: Path, n: int = 48, size: int = 64, seed: int = 0, max_objects: int = 1
) -> Path:
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
            lines.append(
                f"{c} {(x0 + w / 2) / size:.6f} {(y0 + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}"
            )
        cv2.imwrite(str(root / "images" / f"{i:04d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        (root / "labels" / f"{i:04d}.txt").write_text("\n".join(lines) + "\n")
    yaml_path = root / "data.yaml"
    yaml_path.write_text(
        "path: .\ntrain: images\nval: images\nnames:\n"
        + "".join(f"  {k}: {v}\n" for k, v in enumerate(NAMES))
    )
    return yaml_path


@pytest.fixture(scope="session")
def shapes_data(tmp_path_factory) -> Path:
    return make_shapes(tmp_path_factory.mktemp("shapes"), n=48, size=64)


@pytest.fixture(scope="session")
def shapes160(tmp_path_factory) -> Path:
    return make_shapes(tmp_path_factory.mktemp("shapes160"), n=160, size=64, seed=1)


def make_people(root: Path, n: int = 16, size: int = 64, seed: int = 0) -> Path:
    """Write ``n`` images of one grey "person" box with 17 keypoints (dots) laid out like a
    standing figure, as a YOLO pose dataset (``kpt_shape: [17, 3]``); returns data.yaml."""
    import cv2

    rel = np.array(
        [[0.5, 0.08], [0.45, 0.05], [0.55, 0.05], [0.4, 0.07], [0.6, 0.07], [0.3, 0.25], [0.7, 0.25],
         [0.2, 0.45], [0.8, 0.45], [0.15, 0.6], [0.85, 0.6], [0.38, 0.6], [0.62, 0.6], [0.36, 0.8],
         [0.64, 0.8], [0.35, 0.97], [0.65, 0.97]]
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = rng.integers(0, 50, (size, size, 3), dtype=np.uint8)
        w, h = int(rng.integers(size // 3, size // 2)), int(rng.integers(size // 2, size - 4))
        x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        img[y0 : y0 + h, x0 : x0 + w] = 120
        pts = np.stack([x0 + rel[:, 0] * w, y0 + rel[:, 1] * h], 1)
        for k, (x, y) in enumerate(pts):
            cv2.circle(img, (int(x), int(y)), 1, (255, 40 + 12 * k, 255 - 12 * k), -1)
        values = [(x0 + w / 2) / size, (y0 + h / 2) / size, w / size, h / size]
        for x, y in pts:
            values += [x / size, y / size, 2]
        cv2.imwrite(str(root / "images" / f"{i:04d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        (root / "labels" / f"{i:04d}.txt").write_text(
            "0 " + " ".join(f"{v:.6f}" if isinstance(v, float) else str(v) for v in values) + "\n"
        )
    yaml_path = root / "data.yaml"
    yaml_path.write_text(
        "path: .\ntrain: images\nval: images\nkpt_shape: [17, 3]\nnames:\n  0: person\n"
    )
    return yaml_path


@pytest.fixture(scope="session")
def people_data(tmp_path_factory) -> Path:
    return make_people(tmp_path_factory.mktemp("people"), n=10)
