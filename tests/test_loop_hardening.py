"""Loop hardening: a failing sink is disabled (not fatal), unusable frames are skipped."""

from __future__ import annotations

import errno
import io
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
    assert stats.lost_frames == {"disk": 7}  # frames 3..9
    assert "disabled disk (lost 7 frames)" in stats.summary()
    assert stats.outputs_failed


@pytest.mark.parametrize("pipelined", [False, True])
def test_stop_on_sink_error_ends_the_run_and_keeps_what_was_inferred(pipelined):
    full, ok = DiskFullSink(fail_at=3), ListSink()
    stats = run(frames(200), step, [full, ok], pipelined=pipelined, stop_on_sink_error=True)
    assert stats.stopped_by == "output_error"
    assert 4 <= stats.frames < 200  # stopped soon after frame 3, not at the end
    assert [r.frame.index for r in ok.results] == list(range(stats.frames))  # no gap
    assert stats.lost_frames == {"disk": stats.frames - 3}
    assert full.closed == 1 and ok.closed == 1


class FailingFile(io.StringIO):
    """A text file whose writes fail with ENOSPC after ``ok_writes`` lines: a disk filling up,
    injected where JsonlSink meets the file system."""

    def __init__(self, ok_writes: int) -> None:
        super().__init__()
        self.name = "/mnt/full/out.jsonl"
        self.ok_writes = ok_writes

    def write(self, text: str) -> int:
        if self.ok_writes <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.ok_writes -= 1
        return super().write(text)


@pytest.mark.parametrize("pipelined", [False, True])
def test_jsonl_whose_disk_fills_after_n_lines(pipelined):
    fh = FailingFile(ok_writes=4)
    jsonl, ok = JsonlSink(fh), ListSink()
    stats = run(frames(10), step, [jsonl, ok], pipelined=pipelined)
    assert len(fh.getvalue().splitlines()) == 4 and jsonl.frames == 4
    assert len(ok.results) == 10 and stats.stopped_by == "end"
    name = "jsonl /mnt/full/out.jsonl"
    assert stats.lost_frames == {name: 6}
    assert "No space left on device" in stats.sink_errors[name]


def test_a_sink_that_fails_to_close_is_recorded_not_raised():
    class BadClose(ListSink):
        def close(self):
            super().close()
            raise OSError(errno.EIO, "flush failed")

    ok = ListSink()
    stats = run(frames(3), step, [BadClose("late"), ok])
    assert stats.frames == 3 and ok.closed == 1
    assert stats.sink_errors == {"late": "on close: [Errno 5] flush failed"}
    assert stats.lost_frames == {} and stats.outputs_failed
    with pytest.raises(OSError, match="flush failed"):
        run(frames(3), step, [BadClose("late"), ListSink()], isolate_sink_errors=False)


@pytest.mark.parametrize("path", ["/dev/full", "/proc/version"])
def test_jsonl_to_a_file_that_fails_the_first_write(path, caplog):
    """Real files that open but cannot be written: /dev/full (ENOSPC), /proc/version (EIO as
    root, EACCES at open otherwise)."""
    if not os.path.exists(path):
        pytest.skip(f"needs Linux {path}")
    try:
        jsonl = JsonlSink(path)
    except SinkError as exc:  # not root: /proc/version does not even open
        assert path in str(exc) and "Permission denied" in str(exc)
        return
    ok = ListSink()
    with caplog.at_level(logging.WARNING, logger="edgekit.loop"):
        stats = run(frames(5), step, [jsonl, ok])
    assert len(ok.results) == 5
    assert list(stats.sink_errors) == [f"jsonl {path}"]
    assert path in stats.sink_errors[f"jsonl {path}"]
    assert stats.lost_frames == {f"jsonl {path}": 5}
    assert len([r for r in caplog.records if r.name == "edgekit.loop"]) == 1


@pytest.mark.parametrize("pipelined", [False, True])
def test_when_every_sink_failed_the_run_stops_and_says_so(pipelined):
    full = DiskFullSink(fail_at=2)
    stats = run(frames(100), step, [full], pipelined=pipelined)
    assert stats.stopped_by == "output_error" and stats.frames < 100
    assert full.closed == 1 and len(full.results) == 2
    assert stats.lost_frames == {"disk": stats.frames - 2}


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
    from edgekit.app import check_outputs, format_stats

    stats = run([None, *frames(3)], step, [DiskFullSink(fail_at=1), ListSink()])
    text = format_stats(stats)
    assert "skipped 1 unusable frames" in text
    assert (
        "output disk was disabled after a write error: [Errno 28] No space left on device; "
        "2 of 3 frames not written to it"
    ) in text.splitlines()
    with pytest.raises(SinkError, match=r"^output disk lost 2 of 3 frames \(\[Errno 28\]") as info:
        check_outputs(stats)
    assert info.value.exit_code == 5
    check_outputs(run(frames(3), step, [ListSink()]))  # every output held: nothing raised
