"""The compression report: ``report.json`` (every number), ``report.md`` (one table row per
stage) and ``report.png`` (accuracy vs latency, marker area proportional to file size)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgekit.core.artifact import atomic_write_bytes

__all__ = ["markdown_table", "plot", "write_report"]


def _jsonable(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {k: _jsonable(x) for k, x in dataclasses.asdict(v).items()}
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    if hasattr(v, "item") and callable(v.item):  # numpy scalars
        return v.item()
    if hasattr(v, "tolist"):
        return v.tolist()
    return v


def markdown_table(results: Sequence[Any]) -> str:
    """One row per stage: accuracy, size, gzip size, parameters, sparsity, latency."""
    base = results[0] if results else None
    rows = [
        f"| stage | artifact | {base.metric if base else 'top-1'} | size (kB) | gzip (kB) | params | sparsity | latency (ms) | speed-up |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        speed = base.latency_ms / r.latency_ms if base and r.latency_ms > 0 else float("nan")
        params = f"{r.params:,}" if r.params else "-"  # a .tflite teacher: not counted
        rows.append(
            f"| {r.stage} | {r.artifact} | {r.accuracy:.3f} | {r.size_bytes / 1e3:.1f} | "
            f"{r.gzip_bytes / 1e3:.1f} | {params} | {r.sparsity:.2f} | {r.latency_ms:.3f} | "
            f"{speed:.2f}x |"
        )
    return "\n".join(rows)


def plot(results: Sequence[Any], path: str | Path, title: str = "edgekit compress") -> Path:
    """Accuracy vs latency per stage; marker area proportional to the file size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    biggest = max((r.size_bytes for r in results), default=1) or 1
    xs = [r.latency_ms for r in results]
    ys = [r.accuracy for r in results]
    ax.plot(xs, ys, color="0.7", linewidth=1, zorder=1)
    for r in results:
        ax.scatter(
            r.latency_ms, r.accuracy, s=40 + 600 * r.size_bytes / biggest, alpha=0.6, zorder=2
        )
        ax.annotate(
            f"{r.stage}\n{r.size_bytes / 1e3:.0f} kB", (r.latency_ms, r.accuracy),
            textcoords="offset points", xytext=(6, 6), fontsize=8,
        )  # fmt: skip
    ax.set_xlabel("latency per image (ms, median)")
    metric = results[0].metric if results else "top-1"
    ax.set_ylabel(f"{metric} (held-back split)")
    ax.set_title(f"{title} (marker area ~ file size)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def write_report(
    results: Sequence[Any],
    out_dir: str | Path,
    config: Any = None,
    *,
    failed: dict[str, str] | None = None,
) -> dict[str, Path]:
    """Write report.json, report.md and report.png into ``out_dir`` (each atomically: a run
    killed while writing keeps the previous one); returns their paths. ``failed``
    (``{"stage", "error"}``): the stage that failed after ``results``, recorded in both."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "config": _jsonable(config) if config is not None else None,
        "stages": _jsonable(list(results)),
    }
    if failed is not None:
        data["failed"] = dict(failed)
    js = out / "report.json"
    atomic_write_bytes(js, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
    lines = ["# Compression report", ""]
    if config is not None:
        lines += [
            f"- student: `{config.student}` ({config.input_size}px, width {config.width}), data: `{config.data}`"
            + (f" + {', '.join(str(v) for v in config.videos)}" if config.videos else ""),
            f"- teacher: `{config.teacher}`" if config.teacher else "- teacher: none",
            f"- recipe: `{','.join(s.label for s in config.stages)}`, {config.epochs} epochs per training stage, "
            f"seed {config.seed}; latency: edgekit bench, {config.threads} thread, median of {config.bench_runs}",
            "",
        ]
    lines += [markdown_table(results), ""]
    if failed is not None:
        lines += [
            f"**Stage {failed['stage']} failed**: {failed['error']}",
            "",
            "The stages above finished; their artifacts are in this folder.",
            "",
        ]
    for r in results:
        qe = r.details.get("quant_error") if isinstance(r.details, dict) else None
        if qe:
            o = qe["outputs"][0]
            lines.append(
                f"- {r.stage}: float vs int8 on {qe['images']} images: max abs {o['max_abs']:.4f}, "
                f"mean abs {o['mean_abs']:.4f}, cosine {o['cosine']:.4f}, top-1 agreement "
                f"{qe['top1_agreement']}"
            )
        layers = r.details.get("layer_error") if isinstance(r.details, dict) else None
        if isinstance(layers, list) and layers:
            worst = sorted(layers, key=lambda x: -x["rel_rmse"])[:3]
            lines.append(
                f"- {r.stage}: largest per-layer error of {len(layers)} layers (RMSE / float std): "
                + "; ".join(f"`{x['name']}` ({x['op']}) {x['rel_rmse']:.3f}" for x in worst)
            )
    md = out / "report.md"
    atomic_write_bytes(md, ("\n".join(lines) + "\n").encode("utf-8"))
    png = plot(results, out / "report.png") if results else None
    return {"json": js, "md": md, **({"png": png} if png else {})}
