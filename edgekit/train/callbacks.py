"""Training callbacks: per-epoch history (CSV + ``curves.png``), an atomic resumable checkpoint
(weights + optimizer state + epoch), deployable ``best.keras``/``last.keras`` with their spec and
labels, validation metrics computed with the runtime decoders, and a quiet progress display.

Every file is written to a temporary name in the same folder and moved into place, so a run
killed at any moment leaves either the previous or the new version, never a torn one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from edgekit.core.artifact import atomic_write_bytes
from edgekit.zoo.checkpoint import save_checkpoint_spec

__all__ = [
    "DetectionMetrics",
    "EpochRecorder",
    "PoseMetrics",
    "Progress",
    "SaveModels",
    "StateCheckpoint",
    "atomic_write",
    "plot_curves",
    "read_state",
]

STATE_WEIGHTS = "state.weights.h5"
STATE_JSON = "state.json"


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically (``edgekit.core.artifact``'s writer)."""
    atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data)


def _atomic_save(path: Path, save: Callable[[str], None]) -> None:
    """Call ``save(tmp_path)`` (keeping the suffix Keras insists on) then move it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".weights.h5") else path.suffix
    tmp = path.parent / f".tmp-{os.getpid()}-{path.name.removesuffix(suffix)}{suffix}"
    try:
        save(str(tmp))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def read_state(folder: Path) -> dict[str, Any] | None:
    """The checkpoint state (``epoch``, ``iterations``, ``history``) in ``folder``, or None."""
    p = Path(folder) / STATE_JSON
    if not p.is_file() or not (Path(folder) / STATE_WEIGHTS).is_file():
        return None
    return json.loads(p.read_text(encoding="utf-8"))


def _current_lr(model: Any) -> float:
    opt = model.optimizer
    try:
        lr = opt.learning_rate
        return float(keras.ops.convert_to_numpy(lr))
    except Exception:  # pragma: no cover - schedules expose learning_rate as a tensor in Keras 3
        return float("nan")


class EpochRecorder(keras.callbacks.Callback):
    """Keeps one row per finished epoch (all logs, the learning rate, seconds) and rewrites
    ``history.csv`` and ``curves.png`` in ``out`` after each epoch. ``rows`` can be preloaded
    from a checkpoint so a resumed run continues the same files."""

    def __init__(self, out: Path, rows: Sequence[dict[str, float]] = ()) -> None:
        super().__init__()
        self.out = Path(out)
        self.rows: list[dict[str, float]] = [dict(r) for r in rows]
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        row["lr"] = _current_lr(self.model)
        row["seconds"] = time.perf_counter() - self._start
        self.rows = [r for r in self.rows if r["epoch"] < epoch + 1] + [row]
        self.write()

    def write(self) -> None:
        if not self.rows:
            return
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys, restval="")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write(self.out / "history.csv", buf.getvalue())
        plot_curves(self.rows, self.out / "curves.png")


def plot_curves(rows: Sequence[dict[str, float]], path: Path) -> None:
    """Train vs validation curves: one panel per quantity (loss, each loss term, each metric),
    the training value solid and ``val_*`` dashed, so over-fitting shows as diverging lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    skip = {"epoch", "lr", "seconds"}
    names: list[str] = []
    for r in rows:
        for k in r:
            base = k[4:] if k.startswith("val_") else k
            if k not in skip and base not in names:
                names.append(base)
    if not names:
        return
    cols = min(3, len(names))
    nrows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.0 * nrows), squeeze=False)
    epochs = [r["epoch"] for r in rows]
    for ax, name in zip(axes.ravel(), names, strict=False):
        for key, style, label in ((name, "-", "train"), (f"val_{name}", "--", "val")):
            ys = [r.get(key, float("nan")) for r in rows]
            if any(np.isfinite(y) for y in ys if isinstance(y, float)):
                ax.plot(epochs, ys, style, marker="o", markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write(path, buf.getvalue())


class StateCheckpoint(keras.callbacks.Callback):
    """After every epoch: the model's weights with the optimizer state (``state.weights.h5``)
    and ``state.json`` (epoch done, optimizer iterations, history rows), each written atomically,
    the JSON last, so it never points past the weights. ``restore`` loads them into a compiled
    model (see ``edgekit.train.fit``)."""

    def __init__(
        self, folder: Path, recorder: EpochRecorder, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.recorder = recorder
        self.extra = dict(extra or {})

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        _atomic_save(self.folder / STATE_WEIGHTS, lambda p: self.model.save_weights(p))
        state = {
            "epoch": epoch + 1,
            "iterations": int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)),
            "history": self.recorder.rows,
            **self.extra,
        }
        atomic_write(self.folder / STATE_JSON, json.dumps(state, indent=1))

    @staticmethod
    def restore(model: Any, folder: Path) -> dict[str, Any] | None:
        """Load weights + optimizer state saved in ``folder``; returns the state or None."""
        state = read_state(folder)
        if state is None:
            return None
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(str(Path(folder) / STATE_WEIGHTS))
        return state


class SaveModels(keras.callbacks.Callback):
    """Writes the deployable model (``make_deployable(model)``: e.g. the raw YOLO heads wrapped
    with the in-graph decode) as ``last.keras`` after every epoch and ``best.keras`` when
    ``monitor`` improves, each with ``<name>.spec.json`` (the ModelSpec ``edgekit export``/``eval``
    read) and a shared ``labels.txt``."""

    def __init__(
        self,
        out: Path,
        make_deployable: Callable[[Any], Any],
        make_spec: Callable[[Any], Any],
        labels: Sequence[str],
        monitor: str,
        mode: str = "max",
        best: float | None = None,
    ) -> None:
        super().__init__()
        self.out = Path(out)
        self.make_deployable = make_deployable
        self.make_spec = make_spec
        self.labels = tuple(labels)
        self.monitor = monitor
        self.mode = mode
        self.best = best

    def _improved(self, value: float) -> bool:
        if not np.isfinite(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def save(self, name: str) -> Path:
        model = self.make_deployable(self.model)
        path = self.out / f"{name}.keras"
        _atomic_save(path, lambda p: model.save(p))
        spec = self.make_spec(model)
        save_checkpoint_spec(path, spec)
        atomic_write(self.out / "labels.txt", "".join(f"{lab}\n" for lab in self.labels))
        return path

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        self.save("last")
        value = logs.get(self.monitor)
        if value is not None and self._improved(float(value)):
            self.best = float(value)
            self.save("best")
        elif self.best is None and not (self.out / "best.keras").exists():
            self.save("best")


# --------------------------------------------------------------------------- validation metrics
def _predict(model: Any, images: np.ndarray, batch: int = 16) -> list[np.ndarray]:
    outs: list[list[np.ndarray]] = []
    for i in range(0, len(images), batch):
        res = model(images[i : i + batch], training=False)
        res = res if isinstance(res, (list, tuple)) else [res]
        outs.append([keras.ops.convert_to_numpy(r).astype(np.float32) for r in res])
    return [np.concatenate([o[j] for o in outs]) for j in range(len(outs[0]))]


class _ValidationMetrics(keras.callbacks.Callback):
    """Runs the model over ``(images, targets)`` held in memory (at most a few hundred images)
    at the end of each epoch and adds ``val_*`` entries to the logs."""

    def __init__(self, images: np.ndarray, targets: list[dict[str, np.ndarray]]) -> None:
        super().__init__()
        self.images = images
        self.targets = targets


class DetectionMetrics(_ValidationMetrics):
    """``val_AP50`` and ``val_mAP`` (COCO, via ``edgekit.eval.detection``) of the raw heads
    decoded by ``decode(outputs_of_one_image) -> list[Detection]`` in input coordinates."""

    def __init__(
        self,
        images: np.ndarray,
        targets: list[dict[str, np.ndarray]],
        decode: Callable[[list[np.ndarray]], list[Any]],
        class_names: Sequence[str],
        input_size: tuple[int, int],
    ) -> None:
        super().__init__(images, targets)
        self.decode = decode
        self.class_names = tuple(class_names)
        self.input_size = input_size

    def compute(self, model: Any) -> dict[str, float]:
        from edgekit.data.dataset import Dataset, ImageRecord
        from edgekit.eval.detection import ClassMap, evaluate_detections

        outs = _predict(model, self.images)
        h, w = self.input_size
        records, preds = [], []
        for i, t in enumerate(self.targets):
            keep = t["class_ids"] >= 0
            records.append(
                ImageRecord(
                    Path(f"val/{i}.jpg"),
                    w,
                    h,
                    t["boxes"][keep],
                    t["class_ids"][keep],
                    image_id=i + 1,
                )
            )
            preds.append(self.decode([o[i] for o in outs]))
        ds = Dataset(tuple(records), self.class_names)
        if ds.num_boxes == 0:
            return {}
        metrics = evaluate_detections(
            ds, preds, ClassMap.build((), self.class_names, "none")
        ).metrics
        return {"val_AP50": float(metrics["AP50"]), "val_mAP": float(metrics["mAP"])}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs.update(self.compute(self.model))


class PoseMetrics(_ValidationMetrics):
    """``val_pck``: share of labelled keypoints of each image's first person that the in-graph
    MoveNet decode puts within ``alpha`` x the person box's longer side of the truth."""

    def __init__(
        self, images: np.ndarray, targets: list[dict[str, np.ndarray]], alpha: float = 0.2
    ) -> None:
        super().__init__(images, targets)
        self.alpha = float(alpha)

    def compute(self, model: Any) -> dict[str, float]:
        from edgekit.zoo.pose import MoveNetDecode

        outs = _predict(model, self.images)
        k = outs[2].shape[-1]
        kps = keras.ops.convert_to_numpy(MoveNetDecode(k)(*outs))[:, 0]  # (B, K, 3) y, x, score
        hits = total = 0
        for i, t in enumerate(self.targets):
            valid = np.nonzero(t["class_ids"] >= 0)[0]
            if not len(valid):
                continue
            j = valid[0]
            box = t["boxes"][j]
            truth = t["keypoints"][j]
            lab = truth[:, 2] > 0
            size = max(box[2] - box[0], box[3] - box[1], 1e-6)
            d = np.hypot(kps[i, :, 1] - truth[:, 0], kps[i, :, 0] - truth[:, 1])
            hits += int(np.sum((d <= self.alpha * size) & lab))
            total += int(lab.sum())
        return {"val_pck": hits / total} if total else {}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs.update(self.compute(self.model))


# ------------------------------------------------------------------------------------ progress
class Progress(keras.callbacks.Callback):
    """Progress display. ``rich``: a live bar per epoch (steps, loss, ETA) on a terminal;
    ``plain``: one line per epoch (what logs and CI get; no carriage-return flooding);
    ``auto``: rich on a TTY, plain otherwise; ``none``: silent."""

    def __init__(self, mode: str, epochs: int, steps: int | None, stream: Any = None) -> None:
        super().__init__()
        self.stream = stream or sys.stdout
        if mode == "auto":
            mode = "rich" if getattr(self.stream, "isatty", lambda: False)() else "plain"
        self.mode = mode
        self.epochs = epochs
        self.steps = steps
        self._bar = None
        self._task = None
        self._t0 = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._t0 = time.perf_counter()
        if self.mode == "rich":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn(f"epoch {epoch + 1}/{self.epochs}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[loss]}"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("train", total=self.steps, loss="")

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self._bar is not None:
            loss = (logs or {}).get("loss")
            self._bar.update(
                self._task,
                completed=batch + 1,
                loss=f"loss {float(loss):.4f}" if loss is not None else "",
            )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self.mode == "none":
            return
        items = " ".join(f"{k} {float(v):.4g}" for k, v in (logs or {}).items())
        print(
            f"epoch {epoch + 1}/{self.epochs} {time.perf_counter() - self._t0:.1f}s {items}",
            file=self.stream,
            flush=True,
        )

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
