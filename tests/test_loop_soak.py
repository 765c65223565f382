"""Soak: 10,000 frames through the whole loop (JSONL + video sinks) without memory growth or
leaked threads."""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import psutil
import pytest

from edgekit.core.types import Detection, Frame, FrameResult
from edgekit.io.sinks import JsonlSink, VideoSink
from edgekit.loop import run

FRAMES = 10_000
WARMUP = 500


def fast_source(n: int):
    image = np.zeros((48, 64, 3), np.uint8)
    for i in range(n):
        image[:, :, 0] = i % 256
        yield Frame(image.copy(), i, i * 33_000_000, "soak")


def step(frame: Frame) -> FrameResult:
    box = (0.1, 0.2, 0.5, 0.6)
    return FrameResult(frame, detections=(Detection(box, 0, 0.9, "person"),))


class RssProbe:
    """Records resident memory after the warm-up and at the last frame."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.warm: int | None = None
        self.last = 0
        self.frames = 0

    def write(self, result: FrameResult) -> None:
        self.frames += 1
        if self.frames == WARMUP:
            gc.collect()
            self.warm = self.process.memory_info().rss
        elif self.frames == FRAMES:
            gc.collect()
            self.last = self.process.memory_info().rss

    def close(self) -> None:
        pass


@pytest.mark.slow
def test_soak_10k_frames_no_growth_no_thread_leak(tmp_path):
    threads_before = threading.active_count()
    probe = RssProbe()
    jsonl = JsonlSink(tmp_path / "soak.jsonl")
    video = VideoSink(tmp_path / "soak.avi", fps=30)
    t0 = time.perf_counter()
    stats = run(fast_source(FRAMES), step, [jsonl, video, probe])
    elapsed = time.perf_counter() - t0
    assert stats.frames == FRAMES and stats.stopped_by == "end" and not stats.sink_errors
    assert jsonl.frames == FRAMES and video.frames == FRAMES
    lines = (tmp_path / "soak.jsonl").read_text().splitlines()
    assert len(lines) == FRAMES and lines[-1].startswith('{"frame":9999,')
    assert (tmp_path / "soak.avi").stat().st_size > 0
    growth_mb = (probe.last - probe.warm) / 2**20
    deadline = time.monotonic() + 2.0
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.01)
    print(
        f"soak: {FRAMES} frames in {elapsed:.1f} s ({FRAMES / elapsed:.0f} fps), RSS growth "
        f"{growth_mb:+.2f} MB after {WARMUP} warm-up frames, threads {threading.active_count()}"
        f" (before {threads_before})"
    )
    assert growth_mb < 10.0
    assert threading.active_count() == threads_before
