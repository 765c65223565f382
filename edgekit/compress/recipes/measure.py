"""What every recipe runner shares: where a stage's artifact goes, how it is scored (``edgekit
eval`` on the held-back split) and timed (``edgekit bench``), and the guard that turns a failed
stage into :class:`~edgekit.errors.StageFailed` naming what the finished ones left.
"""

from __future__ import annotations

import contextlib
import gzip
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from edgekit.compress.recipes.config import CompressConfig, Stage, StageResult
from edgekit.errors import StageFailed, error_summary

__all__ = [
    "artifact_path",
    "finished_stages",
    "gzip_size",
    "run_stages",
    "score_artifact",
    "stage_guard",
]


def gzip_size(path: Path) -> int:
    """Bytes of ``path`` gzip-compressed at level 9 (what a download or OTA update costs)."""
    return len(gzip.compress(path.read_bytes(), compresslevel=9))


def artifact_path(config: CompressConfig, index: int, stage: Stage, fmt: str) -> Path:
    """``OUT/NN_<stage>[_<format>].tflite``; the format is left out when the stage names it."""
    stem = f"{index:02d}_{stage.label.replace(':', '_')}"
    suffix = "" if fmt in ("float32", stage.name) else f"_{fmt}"
    return config.out / f"{stem}{suffix}.tflite"


def score_artifact(
    config: CompressConfig, path: Path, data_format: str = "auto", data: Path | None = None
) -> tuple[Any, float]:
    """``path`` scored through ``edgekit eval`` on the held-back split (the one ``edgekit eval
    --split val`` uses; all of ``val_data``, or of ``data``, when given) and its median invoke
    time in ms through ``edgekit bench``."""
    from edgekit.bench.latency import BenchConfig, bench_models
    from edgekit.eval.run import EvalConfig, evaluate_model

    if data is None:
        data, split = (config.val_data, "all") if config.val_data else (config.data, "val")
    else:
        split = "all"
    ev = evaluate_model(
        EvalConfig(model=path, data=data, format=data_format, split=split,
                   val_fraction=config.val_fraction, seed=config.seed, threads=config.threads)
    )  # fmt: skip
    bench = bench_models(
        BenchConfig(
            models=(str(path),), runs=config.bench_runs, warmup=5, threads=(config.threads,)
        )
    )[0]
    return ev, float(bench.stages["invoke"].p50_ms)


def run_stages(
    config: CompressConfig,
    results: list[StageResult],
    log: Callable[[str], None],
    run_stage: Callable[[Stage, float], StageResult],
) -> list[StageResult]:
    """Every stage of ``config`` in turn: announced, guarded (:func:`stage_guard`), run by
    ``run_stage(stage, start time)`` and its result appended to ``results``, the report
    rewritten after each."""
    from edgekit.compress.report import write_report

    for i, stage in enumerate(config.stages):
        t0 = time.perf_counter()
        position = f"[{i + 1}/{len(config.stages)}]"
        log(f"{position} {stage.label}")
        with stage_guard(config, f"{position} {stage.label}", results, log):
            results.append(run_stage(stage, t0))
            write_report(results, config.out, config)
    return results


def finished_stages(
    config: CompressConfig, results: Sequence[StageResult]
) -> tuple[str, tuple[str, ...]]:
    """A sentence naming the stages that finished, their artifacts and the report (all under
    ``config.out``); and those paths."""
    out = config.out
    paths = [out / r.artifact for r in results if (out / r.artifact).is_file()]
    paths += [out / name for name in ("report.md", "report.json") if (out / name).is_file()]
    if not results:
        return f"no stage finished; see {out}", tuple(str(p) for p in paths)
    done = ", ".join(
        f"{r.stage} ({r.artifact if (out / r.artifact).is_file() else 'measured'})" for r in results
    )
    return (
        f"finished and kept in {out}: {done}; report {out / 'report.md'}",
        tuple(str(p) for p in paths),
    )


@contextlib.contextmanager
def stage_guard(
    config: CompressConfig,
    label: str,
    results: list[StageResult],
    log: Callable[[str], None],
) -> Iterator[None]:
    """Turn any failure inside one stage into :class:`StageFailed` naming the stage, the error
    and what the finished stages left (their artifacts and the report, rewritten to record the
    failure). Ctrl-C says the same and is raised again."""
    from edgekit.compress.report import write_report

    try:
        yield
    except KeyboardInterrupt:
        log(
            f"edgekit compress: interrupted in stage {label}; "
            + finished_stages(config, results)[0]
        )
        raise
    except Exception as exc:
        failed = {"stage": label, "error": error_summary(exc, 2000)}
        with contextlib.suppress(Exception):  # the report is a courtesy: the error is the news
            write_report(results, config.out, config, failed=failed)
        kept, paths = finished_stages(config, results)
        raise StageFailed(
            f"compress stage {label} failed: {error_summary(exc, 600)}; {kept}",
            stage=label,
            kept=paths,
            cause=exc,
        ) from exc
