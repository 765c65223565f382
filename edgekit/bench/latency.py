"""Measure per-stage latency of TFLite models on a real frame. No TensorFlow.

One run of a model is ``preprocess`` (resize/letterbox + quantize) -> ``invoke`` (the
interpreter) -> ``postprocess`` (dequantize + decode + map to the frame); ``total`` is the wall
time of the three together. Several models and thread counts are measured in one call, and runs
are interleaved round-robin (run 1 of every configuration, then run 2 of every configuration, ...)
so that a noisy, shared machine slows every configuration alike instead of the last one.

Used by ``edgekit bench`` and by later reports (compression, export tables)::

    results = bench_models(BenchConfig(models=("a.tflite", "b.tflite"), threads=(1, 2)))
    results[0].stages["invoke"].p50_ms
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.latency import LatencyStats
from edgekit.core.types import pick_stages
from edgekit.errors import SourceError, UsageError

__all__ = [
    "BENCH_STAGES",
    "BenchConfig",
    "BenchResult",
    "bench_models",
    "sample_image",
]

#: What the bench times, in this order (core.types.STAGES has what each means; ``total`` here
#: is preprocess + invoke + postprocess of a frame already in memory).
BENCH_STAGES = pick_stages("preprocess", "invoke", "postprocess", "total")


@dataclass(frozen=True)
class BenchConfig:
    """What to measure.

    - ``models``: model paths, measured side by side.
    - ``threads``: interpreter thread counts; every model is measured with each. ``None`` means
      the backend's default.
    - ``runs``/``warmup``: timed runs per configuration, and untimed runs before them.
    - ``source``: where the input frame comes from (any ``open_source`` spec; its first frame).
    - ``interleave``: round-robin over configurations per run (fair on a noisy machine); when
      False each configuration runs all its runs in a row.
    """

    models: tuple[str | Path, ...]
    runs: int = 100
    warmup: int = 10
    threads: tuple[int | None, ...] = (None,)
    backend: str | None = None
    source: str = "sample"
    interleave: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "threads", tuple(self.threads) or (None,))
        if not self.models:
            raise UsageError("bench needs at least one model")
        if self.runs < 1:
            raise UsageError(f"runs must be >= 1, got {self.runs}")
        if self.warmup < 0:
            raise UsageError(f"warmup must be >= 0, got {self.warmup}")
        for t in self.threads:
            if t is not None and t < 1:
                raise UsageError(f"threads must be >= 1, got {t}")


@dataclass(frozen=True)
class BenchResult:
    """One (model, backend, threads) configuration and its per-stage statistics."""

    model: str
    backend: str
    threads: int | None
    runs: int
    warmup: int
    size_bytes: int
    kind: str
    stages: dict[str, LatencyStats]
    samples_ms: dict[str, tuple[float, ...]] = field(default_factory=dict, repr=False)
    order: int = 0
    delegate: str | None = None  # "edgetpu" when the Edge TPU ran the model

    @property
    def label(self) -> str:
        """Short name for tables and plots: ``file.tflite (2 threads)``."""
        threads = "default threads" if self.threads is None else f"{self.threads} thread"
        plural = "s" if self.threads not in (None, 1) else ""
        return f"{Path(self.model).name} ({threads}{plural})"

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> BenchResult:
        """The inverse of :meth:`to_dict` (what ``edgekit bench --json`` wrote), without the
        raw samples; each stage's ``count`` is the run count."""
        runs = int(doc["runs"])
        stages = {
            name: LatencyStats(
                count=runs,
                mean_ms=float(s["mean_ms"]),
                std_ms=float(s["std_ms"]),
                p50_ms=float(s["p50_ms"]),
                p90_ms=float(s["p90_ms"]),
                p99_ms=float(s["p99_ms"]),
            )
            for name, s in doc["stages"].items()
        }
        threads = doc.get("threads")
        return cls(
            model=str(doc["model"]),
            backend=str(doc.get("backend") or ""),
            threads=None if threads is None else int(threads),
            runs=runs,
            warmup=int(doc.get("warmup", 0)),
            size_bytes=int(doc.get("size_bytes", 0)),
            kind=str(doc.get("kind") or ""),
            stages=stages,
            order=int(doc.get("order", 0)),
            delegate=doc.get("delegate"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "backend": self.backend,
            "threads": self.threads,
            "runs": self.runs,
            "warmup": self.warmup,
            "size_bytes": self.size_bytes,
            "kind": self.kind,
            "order": self.order,
            "delegate": self.delegate,
            "stages": {
                name: self.stages[name].to_dict() for name in BENCH_STAGES if name in self.stages
            },
        }


def sample_image(source: str = "sample") -> np.ndarray:
    """The first frame (RGB uint8) of ``source`` (``"sample"`` = the built-in photos)."""
    from edgekit.io.sources import open_source

    src = open_source(source)
    try:
        for frame in src:
            return frame.image
    finally:
        src.close()
    raise SourceError(f"source {source!r} produced no frame to benchmark on")


def _load(path: str | Path, backend: str | None, threads: int | None) -> Any:
    from edgekit.runtime.model import Model

    return Model.load(path, backend=backend, threads=threads)


def _kind(model: Any) -> str:
    spec = getattr(model, "spec", None)
    if spec is None:
        return ""
    return f"{spec.task}/{spec.decoder}"


def _one_run(model: Any, image: np.ndarray, clock: Callable[[], float]) -> tuple[float, ...]:
    t0 = clock()
    tensor, transform = model.preprocess(image)
    t1 = clock()
    outputs = model.invoke(tensor)
    t2 = clock()
    model.postprocess(outputs, transform)
    t3 = clock()
    return ((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t3 - t0) * 1e3)


def bench_models(
    config: BenchConfig,
    *,
    image: np.ndarray | None = None,
    clock: Callable[[], float] = time.perf_counter,
    load: Callable[[str | Path, str | None, int | None], Any] = _load,
    progress: Callable[[int, int], None] | None = None,
) -> list[BenchResult]:
    """Measure every model of ``config`` with every thread count; one result per pair.

    ``image`` overrides the frame taken from ``config.source``; ``load(path, backend, threads)``
    and ``clock`` are injectable for tests; ``progress(done, total)`` is called after each
    timed run of each configuration.
    """
    if image is None:
        image = sample_image(config.source)
    configs = [(path, threads) for path in config.models for threads in config.threads]
    models = [load(path, config.backend, threads) for path, threads in configs]
    for model in models:
        for _ in range(config.warmup):
            _one_run(model, image, clock)

    samples: list[list[tuple[float, ...]]] = [[] for _ in models]
    total = config.runs * len(models)
    if config.interleave:
        schedule = ((i, r) for r in range(config.runs) for i in range(len(models)))
    else:
        schedule = ((i, r) for i in range(len(models)) for r in range(config.runs))
    for done, (i, _) in enumerate(schedule, start=1):
        samples[i].append(_one_run(models[i], image, clock))
        if progress is not None:
            progress(done, total)

    results = []
    for order, ((path, threads), model, runs) in enumerate(
        zip(configs, models, samples, strict=True)
    ):
        per_stage = {name: tuple(run[k] for run in runs) for k, name in enumerate(BENCH_STAGES)}
        backend = getattr(model, "backend", None)
        results.append(
            BenchResult(
                model=str(path),
                backend=getattr(backend, "name", "") or "",
                threads=getattr(backend, "threads", None) if threads is None else threads,
                runs=config.runs,
                warmup=config.warmup,
                size_bytes=_size(path),
                kind=_kind(model),
                stages={k: LatencyStats.of(v) for k, v in per_stage.items()},
                samples_ms=per_stage,
                order=order,
                delegate=getattr(backend, "delegate", None),
            )
        )
    return results


def _size(path: str | Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
