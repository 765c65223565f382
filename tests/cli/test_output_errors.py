"""Exit status and summary tell the truth about outputs: ``edgekit detect`` with an output that
cannot be opened (exit 5 before the model loads), one that fails during the run (the run goes
on or stops, the summary names it and counts the frames it lost, exit 5), and one that holds
(exit 0). Runs the packaged default detector on a few small images: no shared data needed."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgekit.app import ASSETS, DEFAULT_MODEL_NAMES
from edgekit.cli.main import main

N_IMAGES = 6

pytestmark = pytest.mark.skipif(
    not any((ASSETS / name).is_file() for name in DEFAULT_MODEL_NAMES["detect"]),
    reason="no packaged default detector",
)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for k in range(N_IMAGES):
        cv2.imwrite(str(folder / f"{k:02d}.png"), rng.integers(0, 256, (48, 64, 3), np.uint8))
    return folder


def edgekit(*args: object) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("edgekit: error:")]


# --- an output that cannot be opened: exit 5 before the model loads ---------------------------


@pytest.mark.parametrize(
    ("option", "target", "reason"),
    [
        ("--jsonl", "a_folder", "Is a directory"),
        ("--jsonl", "a_file/out.jsonl", "a_file is not a folder"),
        ("--save", "a_folder.mp4", "Is a directory"),
        ("--save", "a_file/out.mp4", "a_file is not a folder"),
    ],
)
def test_unopenable_output_fails_before_the_model_loads(option, target, reason, tmp_path, images):
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "a_folder.mp4").mkdir()
    (tmp_path / "a_file").write_text("not a folder\n")
    not_a_model = tmp_path / "notes.tflite"
    not_a_model.write_text("not a model\n" * 20)
    out = tmp_path / target
    # the model is not even a model: exit 5 (not 3) shows the output was checked first
    proc = edgekit("detect", "-m", not_a_model, "-s", images, option, out, "--no-display")
    assert proc.returncode == 5, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("edgekit: error: cannot write") and str(out) in lines[0]
    assert reason in lines[0]


def test_a_video_output_check_leaves_no_file_behind(tmp_path, images):
    out = tmp_path / "clip.mp4"
    proc = edgekit("detect", "-m", tmp_path / "missing.tflite", "-s", images, "--save", out)
    assert proc.returncode == 3, proc.stderr  # the output was fine; the model is missing
    assert not out.exists()


# --- an output that fails during the run --------------------------------------------------------


def real_failing_paths() -> list[str]:
    return [p for p in ("/dev/full", "/proc/version") if os.path.exists(p)]


@pytest.mark.parametrize("path", real_failing_paths())
def test_output_failing_on_its_first_write_exits_5_and_says_what_was_lost(path, images, tmp_path):
    if path == "/proc/version" and os.geteuid() != 0:
        pytest.skip("only root can open /proc/version for writing")
    good = tmp_path / "good.jsonl"
    proc = edgekit("detect", "-s", images, "--jsonl", path, "--save", tmp_path / "v.avi", "-q")
    assert proc.returncode == 5, proc.stderr
    lines = proc.stderr.splitlines()
    # one warning when it happened, one line in the summary
    warned = f"edgekit: warning: output jsonl {path} disabled after a write error at frame 0: "
    assert sum(line.startswith(warned) for line in lines) == 1, proc.stderr
    summary = [line for line in lines if line.startswith(f"output jsonl {path} was disabled")]
    assert summary == [
        f"output jsonl {path} was disabled after a write error: cannot write JSON lines to "
        f"{path}: {os.strerror(errno.ENOSPC if path == '/dev/full' else errno.EIO)}; "
        f"{N_IMAGES} of {N_IMAGES} frames not written to it"
    ]
    assert f"{N_IMAGES} frames in" in proc.stderr and "stopped by end" in proc.stderr
    (error,) = error_lines(proc.stderr)
    assert error.startswith(f"edgekit: error: output jsonl {path} lost {N_IMAGES} of {N_IMAGES}")
    assert proc.stderr.rstrip().endswith(error)  # the last line: after the summary
    # the other output was written whole
    cap = cv2.VideoCapture(str(tmp_path / "v.avi"))
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    assert count == N_IMAGES
    # and with an output that holds, the same run exits 0
    ok = edgekit("detect", "-s", images, "--jsonl", good, "-q")
    assert ok.returncode == 0, ok.stderr
    assert len(good.read_text().splitlines()) == N_IMAGES and "output " not in ok.stderr


class DiskFillsAfter:
    """Stands in for the JSONL file: ``ok_lines`` lines are written, then ENOSPC."""

    def __init__(self, path: Path, ok_lines: int) -> None:
        self._fh = open(path, "w", encoding="utf-8")  # noqa: SIM115
        self.name = str(path)
        self.ok_lines = ok_lines

    def write(self, text: str) -> int:
        if self.ok_lines <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.ok_lines -= 1
        return self._fh.write(text)

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


@pytest.fixture
def disk_fills_after_2(monkeypatch):
    """JsonlSink's file (the boundary with the file system) fails after 2 lines."""
    from edgekit.io import sinks

    real = sinks.JsonlSink

    class Sink(real):
        def __init__(self, path):
            super().__init__(DiskFillsAfter(Path(path), 2))
            self._owns = True  # close the fake file like a real one

    monkeypatch.setattr(sinks, "JsonlSink", Sink)


@pytest.mark.parametrize(("policy", "stopped_by"), [("continue", "end"), ("stop", "output_error")])
def test_output_failing_mid_run(policy, stopped_by, disk_fills_after_2, images, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    args = ["detect", "-s", str(images), "--jsonl", str(out), "--no-display"]
    code = main([*args, "--on-output-error", policy])
    err = capsys.readouterr().err
    assert code == 5, err
    assert [json.loads(line)["frame"] for line in out.read_text().splitlines()] == [0, 1]
    (summary,) = [line for line in err.splitlines() if re.match(r"\d+ frames in ", line)]
    frames = int(summary.split()[0])
    assert f"stopped by {stopped_by}" in summary
    if policy == "continue":
        assert frames == N_IMAGES  # the run went on to the end of the source
    else:
        assert 3 <= frames < N_IMAGES  # ended soon after the failure
    lost = frames - 2
    assert (
        f"output jsonl {out} was disabled after a write error: cannot write JSON lines to "
        f"{out}: No space left on device; {lost} of {frames} frames not written to it"
    ) in err.splitlines()
    (error,) = error_lines(err)
    assert error == (
        f"edgekit: error: output jsonl {out} lost {lost} of {frames} frames "
        f"(cannot write JSON lines to {out}: No space left on device)"
    )


def test_when_the_only_output_fails_the_run_stops_with_its_summary(images, tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs Linux /dev/full")
    proc = edgekit("detect", "-s", images, "--jsonl", "/dev/full", "--no-display", "-q")
    assert proc.returncode == 5, proc.stderr
    lines = proc.stderr.splitlines()
    assert any(re.match(r"\d+ frames in .* stopped by output_error$", line) for line in lines)
    assert any(line.startswith("output jsonl /dev/full was disabled") for line in lines)
    assert lines[-1].startswith("edgekit: error: output jsonl /dev/full lost ")


def test_help_says_what_a_lost_output_does():
    proc = edgekit("detect", "--help")
    text = " ".join(proc.stdout.split())
    assert "--on-output-error [continue|stop]" in text
    assert "[default: continue]" in text and "the exit status is 5" in text
    assert "Exit status: 0 when every frame reached every output" in text
