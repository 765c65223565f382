"""``edgekit detect | pose | classify``: option parsing, RunConfig, and real runs on shared models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekit.app import RunConfig, default_model, format_stats
from edgekit.cli.main import cli
from edgekit.core.latency import LatencyStats
from edgekit.errors import UsageError
from edgekit.loop import LoopStats

SSD = ("models", "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite")
MOVENET = ("models", "movenet_single_pose_lightning_ptq.tflite")
MOBILENET = ("models", "mobilenet_v2_1.0_224_quant.tflite")


def edgekit(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def _fake_stats() -> LoopStats:
    stages = {
        "invoke": LatencyStats.of([10.0, 12.0, 30.0]),
        "total": LatencyStats.of([20.0, 22.0, 40.0]),
    }
    return LoopStats(frames=3, dropped=0, elapsed_s=0.5, fps=6.0, stages=stages)


@pytest.fixture
def captured(monkeypatch):
    """Replace run_app: record the RunConfig the CLI built, return fake stats."""
    seen: list[RunConfig] = []

    def fake_run_app(config, *, announce=None):
        seen.append(config)
        if announce:
            announce("model fake; backend fake, 1 thread(s)")
        return _fake_stats()

    monkeypatch.setattr("edgekit.app.run_app", fake_run_app)
    return seen


@pytest.mark.parametrize("task", ["detect", "pose", "classify"])
def test_options_become_run_config(captured, task, tmp_path):
    args = [
        task,
        "--model",
        "m.tflite",
        "--source",
        "clip.mp4",
        "--jsonl",
        str(tmp_path / "o.jsonl"),
    ]
    args += ["--save", "o.mp4", "--no-display", "--score", "0.4", "--threads", "3"]
    args += [
        "--backend",
        "ai_edge_litert",
        "--labels",
        "l.txt",
        "--max-frames",
        "7",
        "--duration",
        "2.5",
        "-q",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    (config,) = captured
    assert config == RunConfig(
        task=task,
        model=Path("m.tflite"),
        source="clip.mp4",
        jsonl=tmp_path / "o.jsonl",
        save=Path("o.mp4"),
        display=False,
        score=0.4,
        threads=3,
        backend="ai_edge_litert",
        labels=Path("l.txt"),
        max_frames=7,
        duration=2.5,
        console=False,
    )
    assert "3 frames" in result.output and "p50" in result.output


@pytest.mark.parametrize(
    ("args", "camera"), [(["--camera"], 0), (["--camera", "2"], 2), ([], None)]
)
def test_camera_flag_with_optional_index(captured, args, camera):
    result = CliRunner().invoke(cli, ["detect", "-m", "m.tflite", *args, "--no-display"])
    assert result.exit_code == 0, result.output
    assert captured[0].camera == camera and captured[0].source is None


def test_help_teaches_every_option():
    for task in ("detect", "pose", "classify"):
        out = CliRunner().invoke(cli, [task, "--help"]).output
        for option in (
            "--model",
            "--source",
            "--camera",
            "--jsonl",
            "--save",
            "--no-display",
            "--score",
        ):
            assert option in out
        for option in ("--threads", "--backend", "--labels", "--max-frames", "--duration"):
            assert option in out
        assert "Examples" in out


def test_run_config_validation():
    with pytest.raises(UsageError, match="either --source or --camera"):
        RunConfig(task="detect", source="a.mp4", camera=0)
    with pytest.raises(UsageError, match="unknown task"):
        RunConfig(task="segment")
    with pytest.raises(UsageError, match="--score"):
        RunConfig(task="detect", score=1.5)
    with pytest.raises(UsageError, match="--max-frames"):
        RunConfig(task="detect", max_frames=0)


def test_default_model_lookup(tmp_path):
    with pytest.raises(UsageError, match="--model") as info:
        default_model("pose", assets=tmp_path)
    assert "edgekit export" in str(info.value)
    (tmp_path / "pose_default.tflite").write_bytes(b"x")
    assert default_model("pose", assets=tmp_path) == tmp_path / "pose_default.tflite"


def test_no_model_and_no_default_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setattr("edgekit.app.ASSETS", tmp_path)
    result = CliRunner().invoke(cli, ["detect", "--no-display"])
    assert isinstance(result.exception, UsageError)
    assert "--model" in str(result.exception)


def test_format_stats_lists_p50_p90_per_stage():
    text = format_stats(_fake_stats())
    lines = text.splitlines()
    assert lines[0].startswith("3 frames in 0.50 s = 6.0 fps")
    invoke = next(line for line in lines if line.startswith("invoke"))
    assert invoke.split()[1:] == ["12.00", f"{LatencyStats.of([10.0, 12.0, 30.0]).p90_ms:.2f}"]
    assert any(line.startswith("total") for line in lines)


# --- real runs on the shared models (subprocess, like a user) ---------------------------------


def test_detect_sample_writes_pixel_jsonl(shared, tmp_path):
    model = shared(*SSD)
    out = tmp_path / "d.jsonl"
    proc = edgekit(
        "detect",
        "--model",
        model,
        "--max-frames",
        "3",
        "--no-display",
        "--jsonl",
        out,
        "--threads",
        "1",
    )
    assert proc.returncode == 0, proc.stderr
    assert "backend ai_edge_litert, 1 thread(s)" in proc.stderr
    assert "3 frames in" in proc.stderr and "invoke" in proc.stderr and "p90 ms" in proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in rows] == [0, 1, 2]
    first = rows[0]
    assert first["source"].endswith("grace_hopper.jpg")
    labels = {d["label"] for d in first["detections"]}
    assert "person" in labels
    for d in first["detections"]:
        x0, y0, x1, y1 = d["box"]
        assert 0 <= x0 < x1 <= first["width"] and 0 <= y0 < y1 <= first["height"]
        assert d["score"] >= 0.5
    assert {"preprocess", "invoke", "postprocess", "total"} <= set(first["timings_ms"])


def test_pose_on_image_and_saved_video(shared, tmp_path):
    model = shared(*MOVENET)
    squat = shared("images", "squat.bmp")
    out = tmp_path / "p.jsonl"
    proc = edgekit("pose", "-m", model, "--source", squat, "--jsonl", out, "--no-display")
    assert proc.returncode == 0, proc.stderr
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["source"] == str(squat)
    (pose,) = row["poses"]
    assert len(pose["keypoints"]) == 17
    assert all(0 <= x <= row["width"] and 0 <= y <= row["height"] for x, y, _ in pose["keypoints"])

    video = shared("video", "vtest.avi")
    saved = tmp_path / "out.mp4"
    proc = edgekit(
        "pose", "-m", model, "-s", video, "--save", saved, "--max-frames", "4", "--no-display", "-q"
    )
    assert proc.returncode == 0, proc.stderr
    import cv2

    cap = cv2.VideoCapture(str(saved))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames == 4


def test_classify_with_label_file(shared, tmp_path):
    model = shared(*MOBILENET)
    labels = shared("models", "imagenet_labels.txt")
    image = shared("images", "grace_hopper.bmp")
    out = tmp_path / "c.jsonl"
    proc = edgekit(
        "classify", "-m", model, "--labels", labels, "-s", image, "--jsonl", out, "--no-display"
    )
    assert proc.returncode == 0, proc.stderr
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["classes"][0]["label"] == "military uniform"


def test_task_must_match_the_model(shared):
    proc = edgekit("detect", "--model", shared(*MOVENET), "--no-display", "--max-frames", "1")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("edgekit: error:")]
    assert len(errors) == 1 and "pose model" in errors[0] and "edgekit pose" in errors[0]


def test_window_only_with_gui_opencv_and_a_display(monkeypatch):
    from edgekit.app import window_possible

    monkeypatch.setattr("edgekit.io.sinks.gui_available", lambda: False)
    monkeypatch.setenv("DISPLAY", ":0")
    assert window_possible() is False
    monkeypatch.setattr("edgekit.io.sinks.gui_available", lambda: True)
    assert window_possible() is True
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert window_possible() is (not sys.platform.startswith("linux"))
