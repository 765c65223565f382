"""Helpers for the web preview tests: frames to feed, a background feeder, an MJPEG reader."""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import numpy as np

from edgekit.core.types import Detection, Frame, FrameResult
from edgekit.serve import PreviewSink

MAGENTA = (255, 0, 255)


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


def make_result(index: int, *, w: int = 320, h: int = 240, gray: int | None = None) -> FrameResult:
    """A magenta frame (or a uniform ``gray`` one) with two tracked people."""
    image = np.empty((h, w, 3), np.uint8)
    image[:] = MAGENTA if gray is None else (gray, gray, gray)
    dets = (
        Detection((0.55, 0.1, 0.75, 0.5), 0, 0.91, "person", track_id=3),
        Detection((0.8, 0.5, 0.95, 0.9), 0, 0.62, "person", track_id=5),
    )
    timings = {"capture": 1.0, "invoke": 20.0 + index % 3, "total": 30.0}
    return FrameResult(Frame(image, index, index * 1_000_000, "test"), dets, timings=timings)


@contextlib.contextmanager
def feeding(
    sink: PreviewSink, make: Callable[[int], FrameResult] = make_result, period: float = 0.02
) -> Iterator[threading.Event]:
    """Write ``make(k)`` to ``sink`` every ``period`` seconds on a thread until the block ends."""
    stop = threading.Event()

    def run() -> None:
        k = 0
        while not stop.is_set():
            sink.write(make(k))
            k += 1
            time.sleep(period)

    thread = threading.Thread(target=run, name="test-feeder")
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(5)


def read_parts(response, count: int) -> list[tuple[dict[str, str], bytes]]:
    """Parse ``count`` parts of a multipart/x-mixed-replace response: (headers, body)."""
    ctype = response.headers["Content-Type"]
    assert ctype.startswith("multipart/x-mixed-replace"), ctype
    boundary = ctype.split("boundary=")[1].strip()
    parts = []
    while len(parts) < count:
        line = response.readline()
        if not line:
            raise EOFError("stream ended")
        if line.strip() == b"":
            continue
        assert line.strip() == f"--{boundary}".encode(), line
        headers = {}
        while True:
            header = response.readline().strip()
            if not header:
                break
            name, _, value = header.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = response.read(int(headers["content-length"]))
        assert response.read(2) == b"\r\n"
        parts.append((headers, body))
    return parts


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 10):
    """(status, headers, body) of a GET, HTTP errors included."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()
