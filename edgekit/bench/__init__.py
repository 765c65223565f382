"""edgekit.bench: per-stage latency of TFLite models (``bench_models``), the machine block, its
reports, and the same measure on other machines through SSH (``edgekit.bench.remote``)."""

from edgekit.bench.latency import (
    BENCH_STAGES,
    BenchConfig,
    BenchResult,
    bench_models,
)
from edgekit.bench.machine import bench_with_machine, machine_info, thermal_state

__all__ = [
    "BENCH_STAGES",
    "BenchConfig",
    "BenchResult",
    "bench_models",
    "bench_with_machine",
    "machine_info",
    "thermal_state",
]
