"""``edgekit bench``: option parsing, output files and the exact JSON layout."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekit.bench.latency import BenchConfig
from edgekit.cli.bench import expand_list_options
from edgekit.cli.main import cli

STAGE_KEYS = {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms"}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["m", "--threads", "1", "2", "4"],
            ["m", "--threads", "1", "--threads", "2", "--threads", "4"],
        ),
        (["--threads", "1,2", "m"], ["--threads", "1", "--threads", "2", "m"]),
        (["--threads=3", "m", "--runs", "5"], ["--threads", "3", "m", "--runs", "5"]),
        (["a", "b", "--runs", "2"], ["a", "b", "--runs", "2"]),
        (["--", "--threads", "1"], ["--", "--threads", "1"]),
    ],
)
def test_expand_list_options(argv, expected):
    assert expand_list_options(argv, ("--threads",)) == expected


def test_options_become_bench_config(monkeypatch):
    seen = []

    def fake_bench(config):
        seen.append(config)
        return []

    monkeypatch.setattr("edgekit.bench.bench_models", fake_bench)
    args = ["bench", "a.tflite", "b.tflite", "--threads", "1", "2", "--runs", "7", "--warmup", "0"]
    result = CliRunner().invoke(cli, [*args, "--backend", "ai_edge_litert", "--sequential", "-q"])
    assert result.exit_code == 0, result.output
    assert seen == [
        BenchConfig(
            models=(Path("a.tflite"), Path("b.tflite")),
            runs=7,
            warmup=0,
            threads=(1, 2),
            backend="ai_edge_litert",
            interleave=False,
        )
    ]


def test_help_shows_examples():
    out = CliRunner().invoke(cli, ["bench", "--help"]).output
    for text in ("--runs", "--warmup", "--threads", "--json", "--csv", "--plot", "round-robin"):
        assert text in out


def test_bench_two_models_two_thread_counts(shared, tmp_path):
    movenet = shared("models", "movenet_single_pose_lightning_ptq.tflite")
    mobilenet = shared("models", "mobilenet_v1_0.25_128_quant.tflite")
    out_json, out_csv, out_png = tmp_path / "b.json", tmp_path / "b.csv", tmp_path / "b.png"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "edgekit", "bench", str(movenet), str(mobilenet)),
            *("--threads", "1", "2", "--runs", "3", "--warmup", "1"),
            *("--json", str(out_json), "--csv", str(out_csv), "--plot", str(out_png)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (
        "movenet_single_pose_lightning_ptq.tflite" in proc.stdout and "round-robin" in proc.stdout
    )

    doc = json.loads(out_json.read_text())
    results = doc["results"]
    assert [(r["model"], r["threads"]) for r in results] == [
        (str(movenet), 1),
        (str(movenet), 2),
        (str(mobilenet), 1),
        (str(mobilenet), 2),
    ]
    for r in results:
        assert {"model", "backend", "threads", "stages"} <= set(r)
        assert r["backend"] == "ai_edge_litert" and r["runs"] == 3
        assert set(r["stages"]) == {"preprocess", "invoke", "postprocess", "total"}
        for stats in r["stages"].values():
            assert set(stats) == STAGE_KEYS
            assert 0 <= stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"]
        assert r["stages"]["total"]["p50_ms"] >= r["stages"]["invoke"]["p50_ms"] * 0.9
    assert doc["machine"]["cores"] >= 1

    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 4 * 4
    assert out_png.read_bytes()[:4] == b"\x89PNG"
