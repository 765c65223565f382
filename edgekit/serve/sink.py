"""``PreviewSink``: the live web preview as a loop sink (``edgekit detect --serve 8080``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from edgekit.core.types import FrameResult
from edgekit.errors import SinkError
from edgekit.io import overlay
from edgekit.io.sinks import BaseSink, result_to_json
from edgekit.serve.hub import FrameHub
from edgekit.serve.server import DEFAULT_HOST, PreviewServer
from edgekit.serve.stats import StatsWindow

__all__ = ["PreviewSink", "encode_jpeg"]


def encode_jpeg(image_rgb: np.ndarray, quality: int = 80) -> bytes:
    """An RGB uint8 image as JPEG bytes."""
    bgr = cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise SinkError(f"cannot encode a {image_rgb.shape} frame as JPEG")
    return buf.tobytes()


class PreviewSink(BaseSink):
    """Serve annotated frames (MJPEG), FPS and per-stage latency, and the latest results.

    Serving starts at construction on ``host:port`` (default loopback; port 0 = any free port,
    see :attr:`port`, :attr:`url`). ``write(result[, image])`` adds the frame to the stats
    window and, only while at least one stream client is connected, JPEG-encodes the annotated
    frame (``image`` when the loop drew it, else ``render(result)``) once and hands it to the
    clients, each of which takes the newest frame when ready: a slow client never blocks the
    loop. ``wants_image`` is true only while a client watches, so the loop draws for it only
    then. :meth:`close` stops the server and joins its threads.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 8080,
        *,
        token: str | None = None,
        quality: int = 80,
        window: int = 120,
        render: Callable[[FrameResult], np.ndarray] = overlay.render,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if not 1 <= quality <= 100:
            raise SinkError(f"JPEG quality must be 1..100, got {quality}")
        self.quality = quality
        self._render = render
        self.hub = FrameHub()
        self.stats = StatsWindow(window, clock=clock)
        self.server = PreviewServer(
            self.hub, self.stats, host=host, port=port, token=token, latest_json=self._latest
        ).start()
        self.encoded = 0

    @property
    def wants_image(self) -> bool:  # type: ignore[override]
        return self.hub.clients > 0

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def token(self) -> str | None:
        return self.server.token

    def _latest(self) -> dict[str, Any]:
        latest = self.stats.latest
        return result_to_json(latest) if latest is not None else {}

    def _write(self, result: FrameResult, image: np.ndarray | None) -> None:
        self.stats.add(result)
        if self.hub.clients == 0:
            return
        if image is None:
            image = self._render(result)
        self.hub.publish(encode_jpeg(image, self.quality))
        self.encoded += 1

    def _close(self) -> None:
        self.server.close()

    def __repr__(self) -> str:
        return f"PreviewSink({self.server.host!r}, {self.port})"
