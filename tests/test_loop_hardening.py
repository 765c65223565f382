"""Loop hardening: a failing sink is disabled (not fatal), unusable frames are skipped."""

from __future__ import annotations

import errno
import logging
import os
import threading
import time

import numpy as np
import pytest

from edgekit.core.types import Frame, FrameResult
from edgekit.errors import SinkError
from edgekit.io.sinks import JsonlSink
from edgekit.loop import run, usable_frame


def frames(n: int) -> list[Frame]:
    return [Frame(np.full((8, 8, 3), i % 256, np.uint8), i, i, "list") for i in range(n)]


def step(frame: Frame) -> FrameResult:
    return FrameResult(frame)


class ListSink:
    def __init__(self, name: str = "list") -> None:
        self.name = name
        self.results: list[FrameResult] = []
        self.closed = 0

    def write(self, result: FrameResult) -> None:
        assert not self.closed, "write after close"
        self.results.append(result)

    def close(self) -> None:
        self.closed += 1


class DiskFullSink(ListSink):
    def __init__(self, fail_at: int) -> None:
        super().__init__("disk")
        self.fail_at = fail_at

    def write(self, result: FrameResult) -> None:
        if result.frame.index >= self.fail_at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        super().write(result)


@pytest.fixture(autouse=True)
def no_thread_leak():
    before = threading.active_count()
    yield
    deadline = time.monotonic() + 2.0
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before, threading.enumerate()


@pytest.mark.parametrize("pipelined", [False, True])
def test_a_full_disk_disables_one_sink_and_the_loop_goes_on(pipelined, caplog):
    full, ok = DiskFullSink(fail_at=3), ListSink()
    with caplog.at_level(logging.WARNING, logger="edgekit.loop"):
        stats = run(frames(10), step, [full, ok], pipelined=pipelined)
    assert [r.frame.index for r in ok.results] == list(range(10))
    assert [r.frame.index for r in full.results] == [0, 1, 2]
    assert full.closed == 1 and ok.closed == 1  # the failed sink is closed once, not twice
    assert stats.frames == 10 and stats.stopped_by == "end"
    assert list(stats.sink_errors) == ["disk"]
    assert "No space left" in stats.sink_errors["disk"]
    warnings = [r for r in caplog.records if r.name == "edgekit.loop"]
    assert len(warnings) == 1
    assert "disk" in warnings[0].getMessage() and "No space left" in warnings[0].getMessage()
    assert "disabled disk" in stats.summary()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux /dev/full")
def test_jsonl_to_dev_full_is_disabled_and_the_other_sink_gets_every_frame(caplog):
    jsonl, ok = JsonlSink("/dev/full"), ListSink()
    with caplog.at_level(logging.WARNING, logger="edgekit.loop"):
        stats = run(frames(5), step, [jsonl, ok])
    assert len(ok.results) == 5
    assert list(stats.sink_errors) == ["JsonlSink('/dev/full')"]
    assert "/dev/full" in stats.sink_errors["JsonlSink('/dev/full')"]
    assert len([r for r in caplog.records if r.name == "edgekit.loop"]) == 1


def test_when_every_sink_failed_the_run_ends_with_a_sink_error():
    full = DiskFullSink(fail_at=2)
    with pytest.raises(SinkError, match="every output failed; last: disk"):
        run(frames(100), step, [full])
    assert full.closed == 1 and len(full.results) == 2


def test_other_errors_in_a_sink_still_end_the_run():
    class Buggy(ListSink):
        def write(self, result):
            raise ValueError("a bug, not the disk")

    ok = ListSink()
    with pytest.raises(ValueError, match="a bug"):
        run(frames(5), step, [Buggy(), ok])
    assert ok.closed


BAD = [
    None,
    "not a frame",
    Frame(np.zeros((0, 8, 3), np.uint8), 90, 0, "bad"),  # empty
    Frame(np.zeros((8, 8, 3), np.float32), 91, 0, "bad"),  # wrong dtype
    Frame(np.zeros((8, 8), np.uint8), 92, 0, "bad"),  # grey
    Frame(np.zeros((8, 8, 4), np.uint8), 93, 0, "bad"),  # RGBA
    Frame(None, 94, 0, "bad"),  # type: ignore[arg-type]
    Frame(np.zeros((8, 8, 3), np.uint8), 95, 0, "bad", lores=np.zeros((0, 0, 3), np.uint8)),
]


@pytest.mark.parametrize("pipelined", [False, True])
def test_unusable_frames_are_skipped_and_counted(pipelined):
    good = frames(4)
    items = [good[0], *BAD[:4], good[1], good[2], *BAD[4:], good[3]]
    seen: list[int] = []

    def checking_step(frame: Frame) -> FrameResult:
        assert usable_frame(frame)
        seen.append(frame.index)
        return FrameResult(frame)

    sink = ListSink()
    stats = run(items, checking_step, [sink], pipelined=pipelined)
    assert seen == [0, 1, 2, 3]
    assert [r.frame.index for r in sink.results] == [0, 1, 2, 3]
    assert stats.skipped_frames == len(BAD) and stats.frames == 4
    assert "skipped 8 bad frames" in stats.summary()


def test_skipped_frames_do_not_count_towards_max_frames():
    items = [None, None, *frames(5)]
    stats = run(items, step, [ListSink()], max_frames=3, pipelined=False)
    assert stats.frames == 3 and stats.skipped_frames == 2


def test_a_source_of_only_bad_frames_still_stops():
    stats = run([None] * 50, step, [ListSink()])
    assert stats.frames == 0 and stats.skipped_frames == 50 and stats.stopped_by == "end"


def test_timing_samples_are_bounded(monkeypatch):
    import edgekit.loop as loop_mod

    monkeypatch.setattr(loop_mod, "MAX_TIMING_SAMPLES", 100)
    stats = run(frames(300), step, [ListSink()], pipelined=False)
    assert stats.frames == 300
    assert stats.stages["total"].count == 100 and stats.stages["write"].count == 100


def test_the_app_summary_names_skipped_frames_and_disabled_outputs():
    from edgekit.app import format_stats

    stats = run([None, *frames(3)], step, [DiskFullSink(fail_at=1), ListSink()])
    text = format_stats(stats)
    assert "skipped 1 unusable frames" in text
    assert "output disk was disabled: [Errno 28] No space left on device" in text
