"""edgekit.bench: per-stage latency of TFLite models (``bench_models``) and its reports."""

from edgekit.bench.latency import (
    STAGES,
    BenchConfig,
    BenchResult,
    bench_models,
    machine_info,
)

__all__ = ["STAGES", "BenchConfig", "BenchResult", "bench_models", "machine_info"]
