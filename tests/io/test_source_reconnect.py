"""A live OpenCV source that loses its camera reconnects with capped exponential backoff."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.core.types import FrameResult
from edgekit.errors import SourceError
from edgekit.io.sources import VideoSource, open_source
from edgekit.loop import run


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Camera:
    """Fake ``cv2.VideoCapture`` factory: a device that gives ``plan[i]`` frames on the i-th
    opening (0 = it opens but gives nothing, None = it does not open)."""

    def __init__(self, plan: list[int | None]) -> None:
        self.plan = list(plan)
        self.opened: list[FakeCapture] = []
        self.value = 0

    def __call__(self, target):
        count = self.plan.pop(0) if self.plan else None
        cap = FakeCapture(self, count)
        self.opened.append(cap)
        return cap


class FakeCapture:
    def __init__(self, camera: Camera, count: int | None) -> None:
        self.camera, self.left = camera, count or 0
        self.is_open = count is not None
        self.released = False

    def isOpened(self):
        return self.is_open

    def read(self):
        if self.released or self.left <= 0:
            return False, None
        self.left -= 1
        self.camera.value += 1
        return True, np.full((4, 6, 3), self.camera.value % 256, np.uint8)

    def set(self, prop, value):
        return True

    def get(self, prop):
        return 0.0

    def release(self):
        self.released = True


def source(camera: Camera, clock: FakeClock, **kw) -> VideoSource:
    return VideoSource(
        0, capture_factory=camera, sleep=clock.sleep, clock=clock, reconnect=True, **kw
    )


def test_reconnects_with_capped_backoff_and_indices_go_on():
    # 3 frames, lost; 5 failed openings (one opens but gives nothing), then 2 more frames, lost
    # for good.
    camera = Camera([3, None, None, 0, None, None, 2])
    clock = FakeClock()
    src = source(camera, clock, reconnect_attempts=6, reconnect_delays=(0.5, 4.0))
    frames = []
    with pytest.raises(SourceError, match=r"camera 0 lost: no frame after 6 reconnect attempts"):
        for frame in src:
            frames.append(frame)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert [int(f.image[0, 0, 0]) for f in frames] == [1, 2, 3, 4, 5]
    assert src.reconnects == 1
    assert clock.sleeps[:6] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]  # doubling, capped
    assert clock.sleeps[6:] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]  # reset after a success
    assert all(cap.released for cap in camera.opened)  # nothing left open
    assert src.closed


def test_gives_up_after_the_timeout():
    camera = Camera([1])
    clock = FakeClock()
    src = source(camera, clock, reconnect_attempts=100, reconnect_timeout_s=10.0)
    it = iter(src)
    next(it)
    with pytest.raises(SourceError, match=r"lost: no frame after 4 reconnect attempts in 7\.5 s"):
        next(it)
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0]  # the next 8 s wait would pass 10 s
    assert all(cap.released for cap in camera.opened)


def test_without_reconnect_a_lost_camera_ends_the_source():
    camera = Camera([2, 5])
    clock = FakeClock()
    src = VideoSource(0, capture_factory=camera, sleep=clock.sleep, clock=clock)
    assert len(list(src)) == 2 and clock.sleeps == [] and len(camera.opened) == 1


def test_files_never_reconnect():
    camera = Camera([2, 5])
    src = VideoSource("clip.mp4", capture_factory=camera, reconnect=True)
    assert not src.live and not src.reconnect and len(list(src)) == 2


def test_open_source_passes_reconnect(monkeypatch):
    import edgekit.io.sources as sources_mod

    camera = Camera([1, 1])
    monkeypatch.setattr(sources_mod.cv2, "VideoCapture", camera)
    assert open_source(0, reconnect=True).reconnect
    assert not open_source(0).reconnect


def test_the_loop_keeps_its_sinks_through_a_reconnect():
    camera = Camera([4, None, 3, 0])
    clock = FakeClock()
    src = source(camera, clock, reconnect_attempts=2)

    class ListSink:
        def __init__(self) -> None:
            self.indices: list[int] = []
            self.closed = 0

        def write(self, result: FrameResult) -> None:
            assert not self.closed
            self.indices.append(result.frame.index)

        def close(self) -> None:
            self.closed += 1

    sink = ListSink()
    with pytest.raises(SourceError, match="lost"):
        run(src, FrameResult, [sink], pipelined=False)
    assert sink.indices == list(range(7)) and sink.closed == 1
    assert src.reconnects == 1 and src.closed


def test_close_interrupts_a_backoff_wait():
    import threading
    import time

    camera = Camera([1])
    src = VideoSource(0, capture_factory=camera, reconnect=True, reconnect_delays=(30.0, 30.0))
    it = iter(src)
    next(it)
    threading.Timer(0.1, src.close).start()
    t0 = time.monotonic()
    assert next(it, None) is None  # ended by close, not by an error
    assert time.monotonic() - t0 < 2.0
    assert all(cap.released for cap in camera.opened)
