"""Presenting an :class:`~edgekit.eval.run.EvalResult`: rich tables, JSON, a PR-curve plot."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import SinkError

__all__ = ["check_writable", "metrics_table", "per_class_table", "plot_pr_curves", "write_json"]

# Metric keys shown first, per task, in this order (the rest follow).
_ORDER = {
    "detect": ("mAP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR100"),
    "pose": ("AP", "AP50", "AP75", "AR"),
    "classify": ("top1", "top5"),
}


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float) and v.is_integer() and abs(v) >= 1:
        return str(int(v))
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def metrics_table(result: Any) -> Any:
    """A one-row-per-metric rich Table."""
    from rich.table import Table

    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    keys = [k for k in _ORDER.get(result.task, ()) if k in result.metrics]
    keys += [k for k in result.metrics if k not in keys]
    for k in keys:
        table.add_row(k, _fmt(result.metrics[k]))
    return table


def per_class_table(result: Any, top: int | None = 20) -> Any:
    """Per-class (or per-keypoint) rows, most ground truth first for detection."""
    from rich.table import Table

    rows = list(result.per_class.items())
    if not rows:
        return None
    cols = list(rows[0][1].keys())
    if "gt" in cols:
        rows.sort(key=lambda kv: (-kv[1]["gt"], kv[0]))
    caption = None
    if top is not None and len(rows) > top:
        caption = f"{top} of {len(rows)} classes (most ground truth first)"
        rows = rows[:top]
    table = Table(caption=caption)
    table.add_column("keypoint" if result.task == "pose" else "class")
    for c in cols:
        table.add_column(c, justify="right")
    for name, vals in rows:
        table.add_row(name, *(_fmt(vals[c]) for c in cols))
    return table


def check_writable(path: Path | str) -> None:
    """Raise :class:`SinkError` naming ``path`` and the reason when a report cannot be written
    there (a folder, a read-only file system, no permission): checked before an evaluation,
    so that it fails at once instead of after it. Leaves no file behind."""
    out = Path(path)
    existed = os.path.lexists(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "ab"):
            pass
    except OSError as exc:
        raise SinkError(f"{out}: cannot write the report ({exc.strerror or exc})") from None
    if not existed:
        out.unlink(missing_ok=True)


def write_json(result: Any, path: Path | str) -> Path:
    """Write ``result.to_json()`` atomically."""
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        raise SinkError(f"{out}: cannot write JSON ({exc.strerror or exc})") from None
    return out


def plot_pr_curves(result: Any, path: Path | str, top: int = 8) -> Path:
    """Precision vs recall at IoU 0.5 for the ``top`` classes with most ground truth, and the
    mean over all classes with ground truth (a PNG, matplotlib Agg)."""
    if result.task != "detect" or not result.pr_curves:
        raise SinkError(f"{path}: PR curves exist only for detection results with detections")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recall = np.asarray(result.recall)
    named = [n for n in result.pr_curves if n != "all"]
    named.sort(key=lambda n: (-result.per_class[n]["gt"], n))
    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    try:
        for n in named[:top]:
            ap = result.per_class[n]["AP50"]
            ax.plot(recall, result.pr_curves[n], lw=1.2, label=f"{n} (AP50 {ap:.2f})")
        if "all" in result.pr_curves:
            ap50 = result.metrics.get("AP50", float("nan"))
            ax.plot(
                recall, result.pr_curves["all"], "k", lw=2.5, label=f"all classes (AP50 {ap50:.2f})"
            )
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.set_title(f"{Path(result.model).name}: PR at IoU 0.5, {result.images} images")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out)
    except OSError as exc:
        raise SinkError(f"{path}: cannot write plot ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
    return out
