"""edgekit.bench: statistics, round-robin order, reports — with fake models and a fake clock,
plus one real run on the shared SSD when ../shared/data is present."""

from __future__ import annotations

import csv
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest

from edgekit.bench import BENCH_STAGES as STAGES
from edgekit.bench import BenchConfig, bench_models, machine_info, report
from edgekit.core.latency import LatencyStats
from edgekit.errors import UsageError


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += ms / 1e3


class FakeModel:
    """Each stage advances the fake clock by a fixed number of ms; records the call order."""

    def __init__(self, name, clock, log, pre=1.0, inv=10.0, post=2.0, threads=2):
        self.name, self.clock, self.log = name, clock, log
        self.ms = (pre, inv, post)
        self.backend = SimpleNamespace(name="fake", threads=threads, delegate=None)
        self.spec = SimpleNamespace(task="detect", decoder="ssd_postprocess")

    def preprocess(self, image):
        assert image.dtype == np.uint8
        self.log.append(self.name)
        self.clock.advance(self.ms[0])
        return image, "T"

    def invoke(self, tensor):
        self.clock.advance(self.ms[1])
        return [tensor]

    def postprocess(self, outputs, transform):
        assert transform == "T"
        self.clock.advance(self.ms[2])


def _run(config, models):
    clock = FakeClock()
    log: list[str] = []

    def load(path, backend, threads):
        return FakeModel(f"{path}@{threads}", clock, log, **models[str(path)])

    image = np.zeros((8, 8, 3), np.uint8)
    return bench_models(config, image=image, clock=clock, load=load), log


def test_stage_stats_match_numpy():
    samples = [1.0, 2.0, 3.0, 4.0, 100.0]
    s = LatencyStats.of(samples)
    assert s.count == 5 and s.p50_ms == 3.0
    assert s.p90_ms == pytest.approx(np.percentile(samples, 90))
    assert s.p99_ms == pytest.approx(np.percentile(samples, 99))
    assert s.mean_ms == pytest.approx(22.0)
    assert s.std_ms == pytest.approx(np.std(samples))
    assert s.to_dict(2) == {
        "p50_ms": 3.0, "p90_ms": round(s.p90_ms, 2), "p99_ms": round(s.p99_ms, 2),
        "mean_ms": 22.0, "std_ms": round(s.std_ms, 2),
    }  # fmt: skip


def test_per_stage_figures_and_threads():
    config = BenchConfig(models=("a.tflite", "b.tflite"), runs=5, warmup=2, threads=(1, 2))
    results, _ = _run(config, {"a.tflite": {}, "b.tflite": {"inv": 20.0, "post": 0.5}})
    assert [(r.model, r.threads) for r in results] == [
        ("a.tflite", 1),
        ("a.tflite", 2),
        ("b.tflite", 1),
        ("b.tflite", 2),
    ]
    a, b = results[0], results[2]
    assert a.stages["preprocess"].p50_ms == pytest.approx(1.0)
    assert a.stages["invoke"].p50_ms == pytest.approx(10.0)
    assert a.stages["total"].p50_ms == pytest.approx(13.0)
    assert b.stages["invoke"].p99_ms == pytest.approx(20.0)
    assert b.stages["total"].mean_ms == pytest.approx(21.5)
    assert all(len(r.samples_ms["total"]) == 5 for r in results)
    assert a.kind == "detect/ssd_postprocess" and a.backend == "fake"


def test_runs_are_interleaved_round_robin_after_warmup():
    config = BenchConfig(models=("a", "b"), runs=3, warmup=1)
    _, log = _run(config, {"a": {}, "b": {}})
    # warm-up: a once, b once; then a, b, a, b, a, b
    assert log == ["a@None", "b@None"] + ["a@None", "b@None"] * 3
    config = BenchConfig(models=("a", "b"), runs=3, warmup=0, interleave=False)
    _, log = _run(config, {"a": {}, "b": {}})
    assert log == ["a@None"] * 3 + ["b@None"] * 3


def test_default_threads_reported_from_backend():
    config = BenchConfig(models=("a",), runs=1, warmup=0)
    results, _ = _run(config, {"a": {"threads": 4}})
    assert results[0].threads == 4


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(models=()),
        dict(models=("a",), runs=0),
        dict(models=("a",), warmup=-1),
        dict(models=("a",), threads=(0,)),
    ],
)
def test_config_validation(kwargs):
    with pytest.raises(UsageError):
        BenchConfig(**kwargs)


def test_json_csv_table_and_plot(tmp_path):
    config = BenchConfig(models=("a.tflite", "b.tflite"), runs=4, warmup=0, threads=(1,))
    results, _ = _run(config, {"a.tflite": {}, "b.tflite": {"inv": 5.0}})
    doc = report.to_json(results, machine_info())
    assert set(doc) == {"results", "machine"}
    first = doc["results"][0]
    assert {"model", "backend", "threads", "stages"} <= set(first)
    assert list(first["stages"]) == list(STAGES)
    for stats in first["stages"].values():
        assert set(stats) == {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms"}
    assert first["stages"]["invoke"]["p50_ms"] == 10.0

    path = report.write_json(tmp_path / "b.json", results)
    assert json.loads(path.read_text())["results"][1]["stages"]["invoke"]["p90_ms"] == 5.0

    rows = list(csv.DictReader(io.StringIO(report.to_csv(results))))
    assert len(rows) == 2 * len(STAGES)
    assert rows[1]["stage"] == "invoke" and float(rows[1]["p50_ms"]) == 10.0

    from rich.console import Console

    console = Console(file=io.StringIO(), width=200)
    console.print(report.table(results))
    text = console.file.getvalue()
    assert "a.tflite" in text and "b.tflite" in text and "13.00" in text

    png = report.plot(results, tmp_path / "plot.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_machine_info_has_cpu_and_cores():
    info = machine_info()
    assert info["cores"] >= 1 and isinstance(info["cpu"], str) and info["cpu"]


def test_real_ssd_on_sample_frame(shared):
    model = shared("models", "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite")
    results = bench_models(BenchConfig(models=(model,), runs=3, warmup=1, threads=(1,)))
    (r,) = results
    assert r.threads == 1 and r.backend and r.kind.startswith("detect/")
    inv = r.stages["invoke"]
    assert 1.0 < inv.p50_ms < 2000.0
    total = r.stages["total"]
    assert total.p50_ms >= inv.p50_ms
    assert r.size_bytes == model.stat().st_size
