"""Reports over several machines: one column per target (``local`` and each SSH target).

``to_json`` gives ``{"targets": [{"name", "host", "ok", "error", "machine", "results", "eval",
"copied", "seconds"}, ...]}`` where ``results`` has the layout of ``edgekit bench --json`` and
``eval`` that of ``edgekit eval --json``; ``to_csv`` is the bench CSV with a ``target`` column
first (and the accuracy metrics of the row's model as ``eval_*`` columns); ``plot`` draws every
target's configurations in one chart.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgekit.bench.latency import BENCH_STAGES
from edgekit.bench.remote import TargetRun
from edgekit.bench.report import CSV_FIELDS, csv_row, write_text
from edgekit.bench.report import plot as plot_results

__all__ = ["HEADLINE_METRICS", "plot", "table", "to_csv", "to_json", "write_csv", "write_json"]

# The accuracy rows shown in the table, per task (every metric is in --json).
HEADLINE_METRICS: dict[str, tuple[str, ...]] = {
    "detect": ("mAP", "AP50"),
    "pose": ("AP", "PCK@"),
    "classify": ("top1", "top5"),
}


def to_json(runs: Sequence[TargetRun]) -> dict[str, Any]:
    """``{"targets": [...]}``: every target, failed ones with their ``error``."""
    return {"targets": [r.to_dict() for r in runs]}


def write_json(path: str | Path, runs: Sequence[TargetRun]) -> Path:
    return write_text(path, json.dumps(to_json(runs), indent=2) + "\n")


def _eval_metrics(run: TargetRun, model: str) -> dict[str, Any]:
    for doc in run.evals:
        if doc.get("model") == model:
            return dict(doc.get("metrics") or {})
    return {}


def to_csv(runs: Sequence[TargetRun]) -> str:
    """One row per (target, model, threads, stage), with the model's metrics on that target."""
    metrics: list[str] = []
    for run in runs:
        for doc in run.evals:
            metrics += [k for k in doc.get("metrics") or {} if k not in metrics]
    fields = ["target", *CSV_FIELDS, *(f"eval_{m}" for m in metrics)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for run in runs:
        for r in run.results:
            scores = _eval_metrics(run, r.model)
            for stage in r.stages:
                row: dict[str, Any] = {"target": run.name, **csv_row(r, stage)}
                row.update({f"eval_{m}": scores.get(m, "") for m in metrics})
                writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def write_csv(path: str | Path, runs: Sequence[TargetRun]) -> Path:
    return write_text(path, to_csv(runs))


def plot(runs: Sequence[TargetRun], path: str | Path, title: str = "edgekit bench") -> Path:
    """Stacked stage medians with the total's p50→p90 whisker, one bar per target and
    configuration (``target: model (threads)``)."""
    results = [r for run in runs for r in run.results]
    labels = [f"{run.name}: {r.label}" for run in runs for r in run.results]
    return plot_results(results, path, title=title, labels=labels)


# --- the console table ---------------------------------------------------------------------


def _num(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, fmt)


def _before_after(machine: dict[str, Any], key: str, fmt: str) -> str:
    before = (machine.get("before") or {}).get(key)
    after = (machine.get("after") or {}).get(key)
    if before is None and after is None:
        return "-"
    return f"{_num(before, fmt)} → {_num(after, fmt)}"


def _throttled(machine: dict[str, Any]) -> str:
    before = (machine.get("before") or {}).get("throttled")
    after_state = machine.get("after") or {}
    after = after_state.get("throttled")
    if before is None and after is None:
        return "-"
    text = f"{before or '-'} → {after or '-'}"
    flags = after_state.get("throttled_flags") or []
    return text + (f" ({', '.join(flags)})" if flags else "")


def _machine_rows(runs: Sequence[TargetRun]) -> list[tuple[str, list[str]]]:
    def backend(run: TargetRun) -> str:
        m = run.machine
        versions = {
            "ai_edge_litert": m.get("ai-edge-litert"),
            "tflite_runtime": m.get("tflite-runtime"),
        }
        names = {
            " ".join(x for x in (r.backend, versions.get(r.backend)) if x)
            + (f" + {r.delegate}" if r.delegate else "")
            for r in run.results
            if r.backend
        }
        return ", ".join(sorted(names)) or "-"

    def cpu(run: TargetRun) -> str:
        m = run.machine
        if not m:
            return "-"
        return f"{m.get('cpu') or '?'} ×{m.get('cores', '?')} ({m.get('arch', '?')})"

    rows = [
        ("status", ["ok" if r.ok else "failed (see below)" for r in runs]),
        ("board", [r.machine.get("board") or "-" for r in runs]),
        ("cpu", [cpu(r) for r in runs]),
        ("governor", [r.machine.get("governor") or "-" for r in runs]),
        ("backend", [backend(r) for r in runs]),
        ("temp °C before → after", [_before_after(r.machine, "temp_c", ".1f") for r in runs]),
        ("cpu MHz before → after", [_before_after(r.machine, "cpu_mhz", "d") for r in runs]),
        ("throttled before → after", [_throttled(r.machine) for r in runs]),
    ]
    if any("tpu_temp_c" in (r.machine.get("after") or {}) for r in runs):
        rows.append(
            (
                "Edge TPU °C before → after",
                [_before_after(r.machine, "tpu_temp_c", ".1f") for r in runs],
            )
        )
    return rows


def _config_keys(runs: Sequence[TargetRun]) -> list[tuple[str, int]]:
    """(model, position) of every configuration, in the order of the longest result list."""
    longest = max((r.results for r in runs), key=len, default=[])
    return [(r.model, i) for i, r in enumerate(longest)]


def _stage_cell(run: TargetRun, index: int, stage: str) -> str:
    if index >= len(run.results):
        return "-"
    s = run.results[index].stages.get(stage)
    return "-" if s is None else f"{s.p50_ms:.2f} / {s.p90_ms:.2f}"


def _headline(task: str, metrics: dict[str, Any]) -> list[str]:
    keys = []
    for want in HEADLINE_METRICS.get(task, ()):
        keys += [k for k in metrics if k == want or (want.endswith("@") and k.startswith(want))]
    return keys


def _scored_classes(docs: Sequence[dict[str, Any] | None], limit: int = 3) -> list[str]:
    """Classes some target detected (AP50 > 0), most ground truth first: a person detector
    scored on an 80-class set shows its person AP50 next to the all-class mAP."""
    found: dict[str, int] = {}
    for doc in docs:
        for name, row in ((doc or {}).get("per_class") or {}).items():
            if isinstance(row, dict) and (row.get("AP50") or 0) > 0:
                found[name] = max(found.get(name, 0), int(row.get("gt") or 0))
    return sorted(found, key=lambda n: (-found[n], n))[:limit]


def table(runs: Sequence[TargetRun], title: str | None = "edgekit bench") -> Any:
    """A ``rich.table.Table``: a column per target; the machine block, then per configuration
    the p50 / p90 of each stage, then the accuracy of each model when evaluated."""
    from rich.table import Table

    t = Table(
        title=f"{title} (ms: p50 / p90)" if title else None,
        title_justify="left",
        caption_justify="left",
    )
    t.add_column("", overflow="fold", min_width=14)
    for run in runs:
        t.add_column(run.name, overflow="fold", justify="right")
    rows = _machine_rows(runs)
    for i, (label, cells) in enumerate(rows):
        t.add_row(label, *cells, end_section=i == len(rows) - 1)
    for model, index in _config_keys(runs):
        threads = [
            str(run.results[index].threads or "default") if index < len(run.results) else "-"
            for run in runs
        ]
        shown = {n for n in threads if n != "-"}
        if len(shown) == 1 and (n := shown.pop()) != "default":
            t.add_row(f"[bold]{Path(model).name}[/bold], {n} thread{'s' * (n != '1')}")
        else:  # the backend's default: each target's own count
            t.add_row(f"[bold]{Path(model).name}[/bold]", *[""] * len(runs))
            t.add_row("  threads", *threads)
        for stage in BENCH_STAGES:
            t.add_row(f"  {stage}", *[_stage_cell(run, index, stage) for run in runs])
        fps = []
        for run in runs:
            s = run.results[index].stages.get("total") if index < len(run.results) else None
            fps.append(f"{1000.0 / s.p50_ms:.1f}" if s is not None and s.p50_ms > 0 else "-")
        t.add_row("  fps (1000 / total p50)", *fps, end_section=True)
    models = list(dict.fromkeys(doc.get("model") for run in runs for doc in run.evals))
    for model in models:
        docs = [next((d for d in run.evals if d.get("model") == model), None) for run in runs]
        first = next(d for d in docs if d is not None)
        t.add_row(f"[bold]accuracy: {Path(str(model)).name}[/bold]", *[""] * len(runs))
        t.add_row(
            "  images (split)", *[f"{d['images']} ({d['split']})" if d else "-" for d in docs]
        )
        rows = [
            (key, [_num((d.get("metrics") or {}).get(key), ".4f") if d else "-" for d in docs])
            for key in _headline(str(first.get("task")), first.get("metrics") or {})
        ]
        if first.get("task") == "detect":
            for name in _scored_classes(docs):
                cells = [
                    (d.get("per_class") or {}).get(name, {}).get("AP50") if d else None
                    for d in docs
                ]
                rows.append((f"AP50 {name}", [_num(c, ".4f") for c in cells]))
        for k, (label, cells) in enumerate(rows):
            t.add_row(f"  {label}", *cells, end_section=k == len(rows) - 1)
    t.caption = (
        "temp/MHz/throttled: taken just before and just after the timed runs; "
        "all percentiles and metrics in --json"
    )
    return t
