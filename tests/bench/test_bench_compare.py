"""Several machines in one report (edgekit.bench.compare), and the remote protocol of
edgekit.bench.remote run through a local shell standing in for ssh (no server needed)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

import edgekit
from edgekit.bench import BenchConfig, compare
from edgekit.bench.latency import BenchResult
from edgekit.bench.remote import (
    RemoteBenchConfig,
    TargetRun,
    _json_script,
    _probe_script,
    _upload_script,
    bench_argv,
    bench_targets,
    pack_data,
)
from edgekit.bench.ssh import SSHOptions, Target
from edgekit.core.latency import LatencyStats
from edgekit.errors import DatasetError, UsageError

MODEL = Path(edgekit.__file__).parent / "assets" / "detect_default.tflite"


def _result(model: str, invoke: float, threads: int = 1) -> BenchResult:
    def stats(p50: float) -> LatencyStats:
        return LatencyStats(100, p50 * 1.1, 0.2, p50, p50 * 1.5, p50 * 2)

    stages = {"preprocess": 0.4, "invoke": invoke, "postprocess": 0.3}
    stages["total"] = sum(stages.values())
    return BenchResult(
        model=model,
        backend="ai_edge_litert",
        threads=threads,
        runs=100,
        warmup=10,
        size_bytes=123,
        kind="detect/ssd_postprocess",
        stages={k: stats(v) for k, v in stages.items()},
    )


def _runs() -> list[TargetRun]:
    pc = {"cpu": "Intel(R) Xeon(R) Processor", "cores": 2, "arch": "x86_64",
          "ai-edge-litert": "2.3.0", "board": None, "governor": None,
          "before": {"temp_c": None, "throttled": None}, "after": {"temp_c": None, "throttled": None}}  # fmt: skip
    pi = {"cpu": "Cortex-A76", "cores": 4, "arch": "aarch64", "ai-edge-litert": "2.3.0",
          "board": "Raspberry Pi 5 Model B Rev 1.0", "governor": "ondemand",
          "before": {"temp_c": 47.2, "cpu_mhz": 1500, "throttled": "0x0", "throttled_flags": []},
          "after": {"temp_c": 81.3, "cpu_mhz": 1500, "throttled": "0xe0008",
                    "throttled_flags": ["soft-temperature-limit", "arm-frequency-capping-occurred",
                                        "throttling-occurred", "soft-temperature-limit-occurred"]}}  # fmt: skip
    metrics = {"mAP": 0.25, "AP50": 0.5, "AR100": 0.3}
    per_class = {"person": {"AP": 0.3, "AP50": 0.61, "gt": 9}, "dog": {"AP": 0, "AP50": 0, "gt": 3}}
    ev = {"model": "m.tflite", "images": 2, "task": "detect", "split": "all", "metrics": metrics,
          "per_class": per_class}  # fmt: skip
    return [
        TargetRun("local", machine=pc, results=[_result("m.tflite", 8.0)], evals=[ev]),
        TargetRun(
            "pi@cam1",
            host="pi@cam1",
            machine=pi,
            results=[_result("m.tflite", 21.0)],
            evals=[{**ev, "metrics": {**metrics, "mAP": 0.2468}}],
            copied_files=1,
            copied_bytes=123,
        ),
        TargetRun(
            "coral",
            host="mendel@coral",
            machine={
                "board": "Freescale i.MX8MQ Phanbee",
                "ai-edge-litert": "2.3.0",
                "before": {"temp_c": 45.0, "tpu_temp_c": 44.1},
                "after": {"temp_c": 49.0, "tpu_temp_c": 52.3},
            },
            results=[replace(_result("m.tflite", 3.0), delegate="edgetpu")],
        ),
        TargetRun("pi@cam2", host="pi@cam2", error="pi@cam2: connection lost while running x"),
    ]


def test_table_has_a_column_per_target():
    console = Console(file=io.StringIO(), width=200)
    console.print(compare.table(_runs()))
    text = console.file.getvalue()
    header = next(line for line in text.splitlines() if "pi@cam1" in line)
    assert "local" in header and "pi@cam2" in header
    for cell in (
        "Raspberry Pi 5 Model B Rev 1.0",
        "Cortex-A76 ×4 (aarch64)",
        "ondemand",
        "47.2 → 81.3",
        "0x0 → 0xe0008 (soft-temperature-limit, arm-frequency-capping-occurred",
        "m.tflite, 1 thread",
        "8.00 / 12.00",  # local invoke p50 / p90
        "21.00 / 31.50",
        "failed (see below)",
        "ai_edge_litert 2.3.0 + edgetpu",
        "Freescale i.MX8MQ Phanbee",
        "44.1 → 52.3",  # Edge TPU temperature
        "0.2500",
        "0.2468",
        "2 (all)",
        "AP50 person",
        "0.6100",
    ):
        assert cell in text, cell
    assert "AR100" not in text  # headline metrics only; every metric is in --json
    assert "AP50 dog" not in text  # classes nobody detected stay in --json


def test_json_csv_and_plot_carry_every_target(tmp_path):
    runs = _runs()
    doc = json.loads(compare.write_json(tmp_path / "a.json", runs).read_text())
    assert [t["name"] for t in doc["targets"]] == ["local", "pi@cam1", "coral", "pi@cam2"]
    assert doc["targets"][3]["ok"] is False and doc["targets"][3]["results"] == []
    assert doc["targets"][2]["results"][0]["delegate"] == "edgetpu"
    assert doc["targets"][1]["copied"] == {"files": 1, "bytes": 123}
    assert doc["targets"][1]["machine"]["after"]["throttled"] == "0xe0008"
    back = BenchResult.from_dict(doc["targets"][1]["results"][0])
    assert back.stages["invoke"].p50_ms == 21.0 and back.threads == 1

    rows = list(csv.DictReader(compare.write_csv(tmp_path / "a.csv", runs).open()))
    assert [r["target"] for r in rows] == ["local"] * 4 + ["pi@cam1"] * 4 + ["coral"] * 4
    assert rows[4]["eval_mAP"] == "0.2468" and rows[0]["eval_AR100"] == "0.3"
    assert rows[5]["stage"] == "invoke" and rows[5]["p50_ms"] == "21.0"

    png = compare.plot(runs, tmp_path / "a.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_bench_result_round_trip():
    r = _result("x.tflite", 3.0, threads=2)
    back = BenchResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.to_dict() == r.to_dict()


def _checkset(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.jpg").write_bytes(b"jpeg-a")
    (root / "images" / "b.jpg").write_bytes(b"jpeg-b")
    (root / "instances.json").write_text("{}")
    return root


def test_pack_data_is_deterministic_and_keeps_the_folder(tmp_path):
    root = _checkset(tmp_path / "set")
    d1, inner1 = pack_data(root / "instances.json", tmp_path / "1.tar", 1 << 20)
    (root / "images" / "a.jpg").touch()  # a new mtime does not change the pack
    d2, inner2 = pack_data(root, tmp_path / "2.tar", 1 << 20)
    assert d1 == d2 and (inner1, inner2) == ("instances.json", "")
    (root / "images" / "b.jpg").write_bytes(b"changed")
    assert pack_data(root, tmp_path / "3.tar", 1 << 20)[0] != d1
    with pytest.raises(UsageError, match="too large"):
        pack_data(root, tmp_path / "4.tar", 10)
    with pytest.raises(DatasetError):
        pack_data(tmp_path / "missing", tmp_path / "5.tar", 1 << 20)


def _config(tmp_path: Path, **kw) -> RemoteBenchConfig:
    base = dict(
        bench=BenchConfig(models=(MODEL,), runs=2, warmup=0, threads=(1,)),
        targets=(Target("cam1", "cam1"),),
        remote_edgekit=str(Path(sys.executable).with_name("edgekit")),
        remote_cache=str(tmp_path / "cache"),
    )
    return RemoteBenchConfig(**{**base, **kw})


def test_remote_scripts_are_valid_sh(tmp_path):
    config = _config(tmp_path, data=_checkset(tmp_path / "set"))
    from edgekit.bench.remote import _plan

    with _plan(config) as plan:
        scripts = [
            _probe_script(config, plan),
            _upload_script(config, plan.artifacts),
            _json_script(config, bench_argv(config.bench, [a.rel for a in plan.models], None)),
        ]
    for script in scripts:
        assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0, script


def test_bench_argv_carries_the_measurement():
    bench = BenchConfig(models=("x",), runs=7, warmup=2, threads=(1, 4), backend="tflite_runtime",
                        interleave=False)  # fmt: skip
    assert bench_argv(bench, ["models/ab/x"], "inputs/cd/frame.png") == [
        *("bench", "models/ab/x", "--runs", "7", "--warmup", "2", "--threads", "1"),
        *("--threads", "4", "--backend", "tflite_runtime", "--source", "inputs/cd/frame.png"),
        "--sequential",
    ]


def test_config_validation(tmp_path):
    with pytest.raises(UsageError, match="at least one target"):
        _config(tmp_path, targets=())
    with pytest.raises(UsageError, match="--remote-cache"):
        _config(tmp_path, remote_cache="/tmp/a b")
    with pytest.raises(UsageError, match="--remote-edgekit"):
        _config(tmp_path, remote_edgekit="/x;reboot")
    with pytest.raises(UsageError):
        _config(tmp_path, eval_split="test")


def local_shell(argv, **kwargs):
    """ssh stand-in: run the remote command (ssh's last argument) in a local shell."""
    assert argv[0] == "ssh" and "BatchMode=yes" in argv
    kwargs.pop("check", None)
    return subprocess.run(["sh", "-c", argv[-1]], check=False, **kwargs)


def test_protocol_through_a_local_shell(tmp_path):
    """Probe, copy by content hash, bench --json back; the second time nothing is copied."""
    config = _config(tmp_path)
    lines: list[str] = []
    (first,) = bench_targets(config, progress=lines.append, run=local_shell)
    assert first.ok, first.error
    assert (first.copied_files, first.copied_bytes) == (1, MODEL.stat().st_size)
    (stored,) = (tmp_path / "cache" / "models").glob("*/detect_default.tflite")
    assert stored.read_bytes() == MODEL.read_bytes()
    assert first.results[0].model == str(MODEL) and first.machine["edgekit"]
    (second,) = bench_targets(config, progress=lines.append, run=local_shell)
    assert second.ok and second.copied_files == 0
    assert "cam1: all 1 file(s) already there, copying nothing" in lines


def test_a_corrupted_copy_is_refused(tmp_path):
    """A tar that arrives altered fails its sha256 check on the target; nothing is kept."""

    def corrupting(argv, **kwargs):
        if hasattr(kwargs["stdin"], "read"):  # the copy: a tar on stdin
            data = bytearray(kwargs.pop("stdin").read())
            data[600] ^= 0xFF  # inside the first member's bytes
            kwargs["input"] = bytes(data)
        return local_shell(argv, **kwargs)

    (run,) = bench_targets(_config(tmp_path), run=corrupting)
    assert run.error is not None and "arrived corrupted" in run.error
    assert run.error.startswith("cam1: failed while copying files (exit 92)")
    assert not list((tmp_path / "cache" / "models").glob("*/*"))


def test_ssh_options_reach_every_call(tmp_path):
    seen: list[list[str]] = []

    def recording(argv, **kwargs):
        seen.append(argv)
        return local_shell(argv, **kwargs)

    ssh = SSHOptions(known_hosts=tmp_path / "kh", connect_timeout=4)
    (run,) = bench_targets(_config(tmp_path, ssh=ssh), run=recording)
    assert run.ok and len(seen) == 3  # probe, copy, bench
    for argv in seen:
        assert f"UserKnownHostsFile={tmp_path / 'kh'}" in argv and "ConnectTimeout=4" in argv
