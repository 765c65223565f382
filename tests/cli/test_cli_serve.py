"""``--serve``, ``--token`` and ``--track`` on the run commands: options, config, real runs."""

from __future__ import annotations

import json
import re
import threading
import urllib.request

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from preview_helpers import read_parts

from edgekit.app import RunConfig, run_app
from edgekit.cli.main import cli
from edgekit.errors import UsageError
from edgekit.loop import LoopStats

SSD = ("models", "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite")


@pytest.fixture
def captured(monkeypatch):
    seen: list[RunConfig] = []

    def fake_run_app(config, *, announce=None):
        seen.append(config)
        return LoopStats(frames=0, dropped=0, elapsed_s=0.1, fps=0.0)

    monkeypatch.setattr("edgekit.app.run_app", fake_run_app)
    monkeypatch.delenv("EDGEKIT_TOKEN", raising=False)
    return seen


def test_serve_token_and_track_options(captured, monkeypatch):
    runner = CliRunner()
    args = ["detect", "-m", "m.tflite", "--no-display", "--track", "--serve", "0.0.0.0:8080"]
    assert runner.invoke(cli, [*args, "--token", "abc"]).exit_code == 0
    assert (captured[-1].track, captured[-1].serve, captured[-1].token) == (
        True,
        "0.0.0.0:8080",
        "abc",
    )
    monkeypatch.setenv("EDGEKIT_TOKEN", "from-env")
    assert runner.invoke(cli, args).exit_code == 0
    assert captured[-1].token == "from-env"
    # the token only matters with --serve
    assert runner.invoke(cli, ["pose", "-m", "m.tflite", "--no-display"]).exit_code == 0
    assert (captured[-1].track, captured[-1].serve, captured[-1].token) == (False, None, None)


def test_track_is_a_detect_option_only(captured):
    for task in ("pose", "classify"):
        result = CliRunner().invoke(cli, [task, "-m", "m.tflite", "--track"])
        assert result.exit_code == 2 and "--track" in result.output
    assert "--track" in CliRunner().invoke(cli, ["detect", "--help"]).output
    for task in ("detect", "pose", "classify"):
        out = CliRunner().invoke(cli, [task, "--help"]).output
        assert "--serve" in out and "--token" in out and "EDGEKIT_TOKEN" in out


def test_run_config_validation():
    with pytest.raises(UsageError, match="--track works with detect only"):
        RunConfig(task="pose", track=True)
    with pytest.raises(UsageError, match="--serve"):
        RunConfig(task="detect", serve="somewhere")
    with pytest.raises(UsageError, match="--token"):
        RunConfig(task="detect", serve="8080", token="")
    assert RunConfig(task="classify", serve="127.0.0.1:0").serve == "127.0.0.1:0"


def test_detect_track_serve_on_vtest(shared, tmp_path):
    """A real run: the announced URL serves annotated frames while the JSONL gets track ids."""
    out = tmp_path / "t.jsonl"
    config = RunConfig(
        task="detect",
        model=shared(*SSD),
        source=str(shared("video", "vtest.avi")),
        jsonl=out,
        display=False,
        console=False,
        threads=1,
        max_frames=40,
        track=True,
        serve="127.0.0.1:0",
    )
    lines: list[str] = []
    frames: list[bytes] = []

    def watch(url: str) -> None:
        with urllib.request.urlopen(url + "stream.mjpg", timeout=20) as response:
            frames.extend(body for _, body in read_parts(response, 2))

    watcher: list[threading.Thread] = []

    def announce(line: str) -> None:
        lines.append(line)
        match = re.search(r"live preview at (http://\S+)", line)
        if match:
            watcher.append(threading.Thread(target=watch, args=(match.group(1),)))
            watcher[0].start()

    stats = run_app(config, announce=announce)
    watcher[0].join(20)
    assert stats.frames == 40 and "track" in stats.stages
    assert any(line.startswith("live preview at http://127.0.0.1:") for line in lines)
    assert len(frames) == 2
    image = cv2.imdecode(np.frombuffer(frames[0], np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (360, 480, 3)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    ids = {d["track_id"] for r in rows[10:] for d in r.get("detections", []) if "track_id" in d}
    assert len(ids) >= 4  # several people tracked
    assert all("track_id" not in d for d in rows[0].get("detections", []))  # min_hits


def test_serve_fps_option(captured):
    runner = CliRunner()
    args = ["detect", "-m", "m.tflite", "--no-display", "--serve", "0"]
    assert runner.invoke(cli, args).exit_code == 0
    assert captured[-1].serve_fps == 15.0  # the default cap
    assert runner.invoke(cli, [*args, "--serve-fps", "5"]).exit_code == 0
    assert captured[-1].serve_fps == 5.0
    assert runner.invoke(cli, [*args, "--serve-fps", "0"]).exit_code == 0
    assert captured[-1].serve_fps is None  # every frame
    assert runner.invoke(cli, [*args, "--serve-fps", "-1"]).exit_code == 2
    with pytest.raises(UsageError, match="--serve-fps"):
        RunConfig(task="detect", serve="0", serve_fps=0)
