"""Present benchmark results: JSON, CSV, a rich console table and a PNG plot.

The JSON layout (``to_json``) is the stable interface other tools read::

    {"results": [{"model", "backend", "threads", "runs", "size_bytes", "kind",
                  "stages": {"preprocess": {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms"},
                             "invoke": {...}, "postprocess": {...}, "total": {...}}}],
     "machine": {"cpu", "cores", ...}}

matplotlib is imported only by :func:`plot` (with the Agg backend, no display needed).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgekit.bench.latency import BENCH_STAGES, BenchResult
from edgekit.core.artifact import atomic_write_bytes
from edgekit.errors import DependencyMissing, SinkError

__all__ = ["plot", "table", "to_csv", "to_json", "write_csv", "write_json", "write_text"]

CSV_FIELDS = (
    *("model", "backend", "threads", "runs", "size_bytes", "kind", "stage"),
    *("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms"),
)


def to_json(
    results: Sequence[BenchResult], machine: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``{"results": [...], "machine": {...}}`` document."""
    doc: dict[str, Any] = {"results": [r.to_dict() for r in results]}
    if machine is not None:
        doc["machine"] = machine
    return doc


def to_csv(results: Sequence[BenchResult]) -> str:
    """One row per (configuration, stage)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        for stage in BENCH_STAGES:
            if stage not in r.stages:
                continue
            writer.writerow(csv_row(r, stage))
    return buf.getvalue()


def csv_row(r: BenchResult, stage: str) -> dict[str, Any]:
    """One CSV row: a configuration and one stage's statistics (:data:`CSV_FIELDS`)."""
    return {
        "model": r.model,
        "backend": r.backend,
        "threads": "" if r.threads is None else r.threads,
        "runs": r.runs,
        "size_bytes": r.size_bytes,
        "kind": r.kind,
        "stage": stage,
        **r.stages[stage].to_dict(),
    }


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; a failure is a :class:`SinkError`."""
    try:
        return atomic_write_bytes(path, text.encode("utf-8"))
    except OSError as exc:
        raise SinkError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_json(
    path: str | Path, results: Sequence[BenchResult], machine: dict[str, Any] | None = None
) -> Path:
    return write_text(path, json.dumps(to_json(results, machine), indent=2) + "\n")


def write_csv(path: str | Path, results: Sequence[BenchResult]) -> Path:
    return write_text(path, to_csv(results))


def table(results: Sequence[BenchResult], title: str | None = None) -> Any:
    """A ``rich.table.Table``: p50 of each stage, p90/p99/mean±std of the total, and fps."""
    from rich.table import Table

    backends = sorted({r.backend for r in results})
    if title is not None and len(backends) == 1:
        title = f"{title} - {backends[0]}"
    t = Table(title=title, title_justify="left", caption_justify="left")
    t.add_column("model", overflow="fold", min_width=12)
    if len(backends) > 1:
        t.add_column("backend")
    t.add_column("thr", justify="right")
    for name in ("pre", "invoke", "post", "total", "total p90", "total p99", "mean±std", "fps"):
        t.add_column(name, justify="right")
    for r in results:
        s = r.stages
        tot = s["total"]
        row = [Path(r.model).name]
        if len(backends) > 1:
            row.append(r.backend)
        row += [
            "default" if r.threads is None else str(r.threads),
            f"{s['preprocess'].p50_ms:.2f}",
            f"{s['invoke'].p50_ms:.2f}",
            f"{s['postprocess'].p50_ms:.2f}",
            f"{tot.p50_ms:.2f}",
            f"{tot.p90_ms:.2f}",
            f"{tot.p99_ms:.2f}",
            f"{tot.mean_ms:.1f}±{tot.std_ms:.1f}",
            f"{1000.0 / tot.p50_ms:.0f}" if tot.p50_ms > 0 else "-",
        ]
        t.add_row(*row)
    t.caption = (
        "milliseconds, p50 unless marked; fps = 1000 / total p50 (one frame at a time); "
        "all percentiles in --json"
    )
    return t


def plot(
    results: Sequence[BenchResult],
    path: str | Path,
    title: str = "edgekit bench",
    labels: Sequence[str] | None = None,
) -> Path:
    """A PNG: per configuration, stacked p50 bars of the stages with a p90 whisker on the total.
    ``labels`` name the bars (default: each result's ``label``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise DependencyMissing(
            "--plot needs matplotlib", hint="pip install 'edgekit[device]'"
        ) from exc

    if labels is None:
        labels = [r.label for r in results]
    if len(labels) != len(results):
        raise ValueError(f"{len(labels)} labels for {len(results)} results")
    if not results:
        raise SinkError(f"{path}: nothing to plot (no results)")
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(results) + 2.0))
    left = [0.0] * len(results)
    colors = {"preprocess": "#8da0cb", "invoke": "#fc8d62", "postprocess": "#66c2a5"}
    ys = list(range(len(results)))[::-1]
    for stage in BENCH_STAGES[:-1]:  # the parts; total is the marker
        widths = [r.stages[stage].p50_ms for r in results]
        ax.barh(ys, widths, left=left, color=colors[stage], label=f"{stage} p50")
        left = [a + b for a, b in zip(left, widths, strict=True)]
    p50 = [r.stages["total"].p50_ms for r in results]
    p90 = [r.stages["total"].p90_ms for r in results]
    ax.errorbar(
        p50,
        ys,
        xerr=[[0.0] * len(results), [max(b - a, 0.0) for a, b in zip(p50, p90, strict=True)]],
        fmt="o",
        markersize=3,
        color="black",
        capsize=4,
        label="total p50 → p90",
    )
    ax.set_yticks(ys)
    ax.set_yticklabels(labels)
    ax.set_xlabel("latency per frame (ms)")
    ax.set_title(title)
    handles, names = ax.get_legend_handles_labels()
    fig.legend(
        handles,
        names,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=4,
        fontsize="small",
        frameon=False,
    )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    try:
        return atomic_write_bytes(path, buf.getvalue())
    except OSError as exc:
        raise SinkError(f"cannot write {path}: {exc.strerror or exc}") from exc
