"""A generated test card: the ``sample`` source when no photo package is installed.

The sample photos ship inside matplotlib and scikit-image, which a Raspberry Pi's minimal
install (the ``pi`` extra) leaves out. ``edgekit detect`` with no arguments must still run there,
so :func:`draw_test_card` draws a deterministic RGB image (gradient, colour bars, shapes, text) and
:class:`ArraySource` serves it like an image file.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import cv2
import numpy as np

from edgekit.core.types import Frame
from edgekit.errors import SourceError
from edgekit.io.base import BaseSource

# The seven colour bars of a classic test card, RGB.
_BARS = (
    (192, 192, 192),
    (192, 192, 0),
    (0, 192, 192),
    (0, 192, 0),
    (192, 0, 192),
    (192, 0, 0),
    (0, 0, 192),
)


def draw_test_card(width: int = 640, height: int = 480) -> np.ndarray:
    """A deterministic ``height x width`` RGB uint8 test image (same arguments, same pixels)."""
    if width < 64 or height < 48:
        raise SourceError(f"test card must be at least 64x48, got {width}x{height}")
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = x[None, :].astype(np.uint8)
    image[..., 1] = y.astype(np.uint8)
    image[..., 2] = (255 - (x[None, :] + y) / 2).astype(np.uint8)
    top, bottom = height // 8, height // 3
    for i, colour in enumerate(_BARS):
        x0, x1 = i * width // len(_BARS), (i + 1) * width // len(_BARS)
        image[top:bottom, x0:x1] = colour
    cx, cy, r = width // 4, 2 * height // 3, min(width, height) // 7
    cv2.circle(image, (cx, cy), r, (240, 240, 240), thickness=-1)
    cv2.rectangle(image, (width // 2, cy - r), (width // 2 + 2 * r, cy + r), (20, 20, 20), -1)
    cv2.putText(
        image, "edgekit", (width // 2 - r, height - height // 16), cv2.FONT_HERSHEY_SIMPLEX,
        min(width, height) / 320, (255, 255, 255), max(1, min(width, height) // 160), cv2.LINE_AA,
    )  # fmt: skip
    return image


class ArraySource(BaseSource):
    """In-memory RGB uint8 images, each yielded ``repeat`` times in turn; ``Frame.source`` is
    ``name``."""

    def __init__(self, images: Sequence[np.ndarray], *, name: str, repeat: int = 1) -> None:
        super().__init__()
        if not images:
            raise SourceError(f"no images in {name}")
        if repeat < 1:
            raise SourceError(f"repeat must be >= 1, got {repeat}")
        for image in images:
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise SourceError(f"{name}: images must be RGB uint8 (H, W, 3)")
        self.images = tuple(images)
        self.repeat = repeat
        self.name = name

    def __len__(self) -> int:
        return len(self.images) * self.repeat

    def _frames(self) -> Iterator[Frame]:
        for _ in range(self.repeat):
            for image in self.images:
                if self._closed:
                    return
                yield self._frame(image.copy(), self.name, time.time_ns())
