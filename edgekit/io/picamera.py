"""Raspberry Pi camera through picamera2: the main stream for display, 'lores' for inference.

picamera2 (and libcamera) come from Raspberry Pi OS (``apt install python3-picamera2``) and are
imported only when this source is opened. Every frame is taken with ``captured_request()`` as a
context manager, so the camera buffers go back to libcamera even if conversion fails.

Formats, as picamera2 documents them: ``RGB888`` is stored in memory as B, G, R (what OpenCV
calls BGR) and is converted to RGB here; the low-resolution stream is ``YUV420`` (planar
Y, U, V = I420, shape ``(h * 3 // 2, w)``) on a Pi 4 and earlier. It is converted with
``COLOR_YUV2RGB_I420``: OpenCV's ``COLOR_YUV420p2RGB`` is an alias of ``COLOR_YUV2RGB_YV12``
(V before U), which on I420 data swaps the chroma planes and gives (roughly) BGR.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np

from edgekit.core.types import Frame
from edgekit.errors import SourceError
from edgekit.io.base import BaseSource


def _import_picamera2() -> Callable[[int], Any]:
    try:
        from picamera2 import Picamera2  # type: ignore[import-not-found]
    except ImportError as exc:
        raise SourceError(
            f"picamera2 cannot be imported ({exc})",
            hint="on Raspberry Pi OS: sudo apt install python3-picamera2, in a venv made with "
            "--system-site-packages",
        ) from exc
    return Picamera2


def picamera_to_rgb(array: np.ndarray, fmt: str) -> np.ndarray:
    """One picamera2 ``make_array`` result in format ``fmt`` -> RGB uint8 (H, W, 3)."""
    fmt = fmt.upper()
    if fmt in ("YUV420", "YVU420"):
        code = cv2.COLOR_YUV2RGB_I420 if fmt == "YUV420" else cv2.COLOR_YUV2RGB_YV12
        return cv2.cvtColor(np.ascontiguousarray(array), code)
    if fmt in ("RGB888", "XRGB8888"):  # memory order B, G, R(, X)
        return np.ascontiguousarray(array[..., 2::-1])
    if fmt in ("BGR888", "XBGR8888"):  # memory order R, G, B(, X)
        return np.ascontiguousarray(array[..., :3])
    raise SourceError(f"picamera2 format {fmt} is not supported (use RGB888 / YUV420)")


def lores_size_for(
    size: tuple[int, int], resized_hw: Callable[[tuple[int, int]], tuple[int, int]]
) -> tuple[int, int]:
    """The low-resolution stream (width, height) for a main stream of ``size`` (width, height)
    and a model whose resize rule is ``resized_hw`` (``Preprocessor.resized_hw``): the main view
    scaled, aspect kept (the ISP scales one crop into both streams), just large enough to hold
    what the model resizes a main frame to (exactly that for a letterboxing model whose resized
    size is even), even sides (YUV420), never larger than the main stream."""
    w, h = (int(v) for v in size)
    rh, rw = resized_hw((h, w))
    scale = min(1.0, max(rw / w, rh / h))

    def even(v: float, most: int) -> int:
        return max(2, min(most - most % 2, 2 * math.ceil(round(v, 6) / 2)))

    return even(w * scale, w), even(h * scale, h)


class Picamera2Source(BaseSource):
    """A Raspberry Pi camera. ``Frame.image`` is the main stream (RGB, ``size``);
    ``Frame.lores`` is the low-resolution stream (RGB, ``lores_size``) for the model, or ``None``
    when ``lores_size`` is ``None``. Keep both sizes at the same aspect ratio: the ISP scales the
    same crop into both, so normalized results map from lores onto main unchanged.
    ``lores_for`` (a loaded model's ``Preprocessor.resized_hw``) sizes the low-resolution
    stream for that model instead (:func:`lores_size_for`).

    ``picamera2_factory`` replaces the ``Picamera2`` class (tests inject a fake here).
    """

    live = True

    def __init__(
        self,
        camera_num: int = 0,
        *,
        size: tuple[int, int] = (1280, 720),
        lores_size: tuple[int, int] | None = (512, 288),
        main_format: str = "RGB888",
        lores_format: str = "YUV420",
        buffer_count: int | None = None,
        picamera2_factory: Callable[[int], Any] | None = None,
        lores_for: Callable[[tuple[int, int]], tuple[int, int]] | None = None,
    ) -> None:
        super().__init__()
        if lores_for is not None:
            lores_size = lores_size_for(size, lores_for)
        factory = picamera2_factory or _import_picamera2()
        self.name = f"picamera2 {camera_num}"
        self._main_format = main_format
        self._lores_format = lores_format
        self._has_lores = lores_size is not None
        try:
            self._cam = factory(camera_num)
        except (IndexError, RuntimeError, OSError, ValueError) as exc:
            raise SourceError(f"cannot open picamera2 camera {camera_num}: {exc}") from exc
        try:
            streams: dict[str, Any] = {"main": {"size": tuple(size), "format": main_format}}
            if lores_size is not None:
                streams["lores"] = {"size": tuple(lores_size), "format": lores_format}
            if buffer_count is not None:
                streams["buffer_count"] = buffer_count
            config = self._cam.create_video_configuration(**streams)
            self._cam.configure(config)
            self._cam.start()
        except Exception as exc:
            self._cam.close()
            raise SourceError(f"cannot start picamera2 camera {camera_num}: {exc}") from exc
        self._started = True

    def capture(self) -> tuple[np.ndarray, np.ndarray | None, int]:
        """One request: (main RGB, lores RGB or None, timestamp ns); buffers released on exit."""
        with self._cam.captured_request() as request:
            main = request.make_array("main")
            lores = request.make_array("lores") if self._has_lores else None
            metadata = request.get_metadata() if hasattr(request, "get_metadata") else {}
        image = picamera_to_rgb(main, self._main_format)
        small = None if lores is None else picamera_to_rgb(lores, self._lores_format)
        stamp = int((metadata or {}).get("SensorTimestamp") or time.time_ns())
        return image, small, stamp

    def _frames(self) -> Iterator[Frame]:
        while not self._closed:
            image, small, stamp = self.capture()
            yield self._frame(image, self.name, stamp, lores=small)

    def _release(self) -> None:
        try:
            if self._started:
                self._cam.stop()
        finally:
            self._cam.close()
