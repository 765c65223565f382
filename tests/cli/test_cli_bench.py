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

    def fake_bench(config, progress=None):
        seen.append(config)
        return []

    monkeypatch.setattr("edgekit.bench.latency.bench_models", fake_bench)
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


def _fake_targets(monkeypatch, runs):
    seen = []

    def fake(config, progress=None, run=None):
        seen.append(config)
        if progress is not None:
            progress("cam1: connecting")
        return runs

    monkeypatch.setattr("edgekit.bench.remote.bench_targets", fake)
    return seen


def _run(name, error=None):
    from edgekit.bench.latency import BenchResult
    from edgekit.bench.remote import TargetRun
    from edgekit.core.latency import LatencyStats

    stats = LatencyStats(3, 1.0, 0.1, 1.0, 1.5, 2.0)
    results = [] if error else [
        BenchResult("a.tflite", "ai_edge_litert", 1, 3, 1, 10, "detect/ssd_postprocess",
                    {s: stats for s in ("preprocess", "invoke", "postprocess", "total")})
    ]  # fmt: skip
    return TargetRun(name, host=None if name == "local" else name, results=results, error=error)


def test_on_options_become_a_remote_config(monkeypatch, tmp_path, capsys):
    from edgekit.bench.remote import default_remote_edgekit
    from edgekit.bench.ssh import Target
    from edgekit.cli.main import main

    seen = _fake_targets(monkeypatch, [_run("local"), _run("pi@cam1:2222")])
    argv = ["bench", "a.tflite", "--on", "pi@cam1:2222", "--local", "--threads", "1"]
    argv += ["--known-hosts", str(tmp_path / "kh"), "--ssh-option", "Compression=yes"]
    argv += ["--data", str(tmp_path), "--split", "all", "--max-images", "5"]
    argv += ["--json", str(tmp_path / "o.json"), "--connect-timeout", "5"]
    assert main(argv) == 0
    (config,) = seen
    assert config.targets == (Target("pi@cam1:2222", "cam1", "pi", 2222),) and config.local
    assert config.bench.threads == (1,) and config.data == tmp_path
    assert (config.eval_split, config.eval_max_images) == ("all", 5)
    assert config.remote_edgekit == default_remote_edgekit() == "/opt/edgekit/venv/bin/edgekit"
    assert config.ssh.known_hosts == tmp_path / "kh" and config.ssh.connect_timeout == 5
    assert config.ssh.extra == ("Compression=yes",) and not config.ssh.accept_new_host_keys
    out = capsys.readouterr()
    assert "pi@cam1:2222" in out.out and "cam1: connecting" in out.err
    doc = json.loads((tmp_path / "o.json").read_text())
    assert [t["name"] for t in doc["targets"]] == ["local", "pi@cam1:2222"]


def test_a_failed_target_fails_the_command_but_keeps_the_others(monkeypatch, tmp_path, capsys):
    from edgekit.cli.main import main

    err = "cam2: connection lost while running edgekit bench: Connection closed"
    _fake_targets(monkeypatch, [_run("cam1"), _run("cam2", error=err)])
    out_json, out_csv = tmp_path / "o.json", tmp_path / "o.csv"
    code = main(["bench", "a.tflite", "--on", "cam1", "--on", "cam2", "--json", str(out_json),
                 "--csv", str(out_csv)])  # fmt: skip
    assert code == 10
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"edgekit: error: {err}"
    doc = json.loads(out_json.read_text())
    assert doc["targets"][0]["ok"] and len(doc["targets"][0]["results"]) == 1
    assert doc["targets"][1]["error"] == err
    assert {r["target"] for r in csv.DictReader(out_csv.open())} == {"cam1"}


def test_local_needs_on(capsys):
    from edgekit.cli.main import main

    assert main(["bench", "a.tflite", "--local"]) == 2
    assert "give --on too" in capsys.readouterr().err


def test_data_without_on_scores_this_machine(monkeypatch):
    from edgekit.cli.main import main

    seen = _fake_targets(monkeypatch, [_run("local")])
    assert main(["bench", "a.tflite", "--data", "set/", "-q"]) == 0
    assert seen[0].local and seen[0].targets == () and seen[0].data == Path("set/")
