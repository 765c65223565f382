"""``PreviewSink``: the live web preview as a loop sink (``edgekit detect --serve 8080``)."""

from __future__ import annotations

import threading
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
from edgekit.serve.server import DEFAULT_HOST, PreviewLimits, PreviewServer, frame_part
from edgekit.serve.stats_window import StatsWindow

__all__ = ["PreviewSink", "encode_jpeg"]

_IDLE_S = 0.5


def encode_jpeg(image_rgb: np.ndarray, quality: int = 80) -> bytes:
    """An RGB uint8 image as JPEG bytes."""
    bgr = cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise SinkError(f"cannot encode a {image_rgb.shape} frame as JPEG")
    return buf.tobytes()


class _Newest:
    """A one-item mailbox: ``put`` never blocks and replaces what nobody took yet."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._closed = False

    def put(self, item: Any) -> None:
        with self._cond:
            self._item = item
            self._cond.notify()

    @property
    def closed(self) -> bool:
        return self._closed

    def take(self, timeout: float) -> Any:
        """The item (and empty the box), or None after ``timeout`` or once closed."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return None if self._closed else item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class PreviewSink(BaseSink):
    """Serve annotated frames (MJPEG), FPS and per-stage latency, and the latest results.

    Serving starts at construction on ``host:port`` (default loopback; port 0 = any free port,
    see :attr:`port`, :attr:`url`). ``write(result[, image])`` adds the frame to the stats
    window and, only while at least one stream client is connected, hands it to the preview's
    own encoder thread (newest frame wins; never a queue), which draws it (or takes ``image``
    when the loop drew it anyway), JPEG-encodes it once, frames it as one MJPEG part and
    publishes it to every client: neither drawing, encoding nor sending ever runs on a loop
    thread, and a slow client never blocks anything. ``max_fps`` caps how often a frame is
    encoded (None: every frame the encoder can take). ``limits`` bounds connections and slow
    clients (:class:`~edgekit.serve.server.PreviewLimits`). :meth:`close` stops the server
    and the encoder and joins their threads.
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
        max_fps: float | None = None,
        limits: PreviewLimits | None = None,
    ) -> None:
        super().__init__()
        if not 1 <= quality <= 100:
            raise SinkError(f"JPEG quality must be 1..100, got {quality}")
        if max_fps is not None and max_fps <= 0:
            raise SinkError(f"preview max_fps must be > 0, got {max_fps}")
        self.quality = quality
        self._render = render
        self._min_interval = 1.0 / max_fps if max_fps else 0.0
        self.hub = FrameHub()
        self.stats = StatsWindow(window, clock=clock)
        self.server = PreviewServer(
            self.hub,
            self.stats,
            host=host,
            port=port,
            token=token,
            latest_json=self._latest,
            limits=limits,
        ).start()
        self.encoded = 0
        self.encoder_error: BaseException | None = None
        self._mailbox = _Newest()
        self._encoder = threading.Thread(
            target=self._encode_loop, name="edgekit-preview-encoder", daemon=True
        )
        self._encoder.start()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def token(self) -> str | None:
        return self.server.token

    @property
    def name(self) -> str:
        return f"preview {self.server.url}"

    def _latest(self) -> dict[str, Any]:
        latest = self.stats.latest
        return result_to_json(latest) if latest is not None else {}

    def _write(self, result: FrameResult, image: np.ndarray | None) -> None:
        self.stats.add(result)
        if self.encoder_error is not None:
            raise SinkError(f"the preview's encoder failed: {self.encoder_error}")
        if self.hub.clients > 0:
            self._mailbox.put((result, image))

    def _encode_loop(self) -> None:
        last = float("-inf")
        while not self._mailbox.closed:
            item = self._mailbox.take(_IDLE_S)
            if item is None or self.hub.clients == 0:
                continue
            wait = last + self._min_interval - time.monotonic()
            if wait > 0:  # capped rate: sleep, then encode the newest frame by then
                time.sleep(wait)
                item = self._mailbox.take(0) or item
            result, image = item
            try:
                if image is None:
                    image = self._render(result)
                part = frame_part(encode_jpeg(image, self.quality))
            except Exception as exc:  # reported by the next write: the loop disables the sink
                self.encoder_error = exc
                return
            last = time.monotonic()
            self.hub.publish(part)
            self.encoded += 1

    def _close(self) -> None:
        self._mailbox.close()
        self._encoder.join()
        self.server.close()

    def __repr__(self) -> str:
        return f"PreviewSink({self.server.host!r}, {self.port})"
