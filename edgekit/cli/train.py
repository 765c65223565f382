"""``edgekit train``: train a zoo model on a dataset; thin over :func:`edgekit.train.fit.train`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgekit.train.config import PROGRESS, STRATEGIES

_CTX = {"help_option_names": ["-h", "--help"]}


@click.command(context_settings=_CTX)
@click.option(
    "--model",
    "-m",
    default=None,
    help="Zoo model name (see `edgekit models list`) or a .keras checkpoint with its "
    ".spec.json (e.g. from `edgekit import`): its classes are picked by name, its size set by --img.",
)
@click.option(
    "--data",
    "-d",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Dataset: COCO json/folder, YOLO data.yaml/folder, VOC folder, or ROOT/<class>/<image>.",
)
@click.option(
    "--format", "format_", default=None, help="Dataset format: auto, coco, yolo, voc, folder."
)
@click.option("--epochs", type=int, default=None, help="Epochs in total (default 50).")
@click.option(
    "--batch", type=int, default=None, help="Global batch size, split over replicas (default 16)."
)
@click.option("--img", type=int, default=None, help="Square input size (default: the zoo's).")
@click.option("--lr", type=float, default=None, help="Peak learning rate (default 1e-3).")
@click.option("--width", type=float, default=None, help="Backbone width multiplier.")
@click.option("--val-fraction", type=float, default=None, help="Held-out share (default 0.2).")
@click.option("--seed", type=int, default=None, help="Seed of the split, init and shuffling.")
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run folder (default runs/train).",
)
@click.option(
    "--resume",
    is_flag=True,
    default=None,
    help="Continue the run in --out from its last checkpoint.",
)
@click.option(
    "--init",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Start from a .keras / .weights.h5 checkpoint (fine-tuning).",
)
@click.option("--freeze", default=None, help="Freeze 'backbone' or its first N blocks.")
@click.option(
    "--strategy",
    type=click.Choice(STRATEGIES),
    default=None,
    help="tf.distribute strategy (default auto).",
)
@click.option("--mixed-precision", is_flag=True, default=None, help="float16 compute (GPU only).")
@click.option("--sync-bn", is_flag=True, default=None, help="BatchNorm over the global batch.")
@click.option(
    "--no-augment", "augment", flag_value=False, default=None, help="Turn augmentation off."
)
@click.option("--mosaic", type=float, default=None, help="Probability of a 2x2 mosaic image.")
@click.option(
    "--no-tensorboard",
    "tensorboard",
    flag_value=False,
    default=None,
    help="Do not write TensorBoard logs (logs/).",
)
@click.option("--steps-per-epoch", type=int, default=None, help="Cap the batches per epoch.")
@click.option(
    "--teacher",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="SSD teacher (.keras with spec, or a .tflite edgekit can import): its per-anchor class "
    "scores are soft targets next to the labels.",
)
@click.option(
    "--temperature", type=float, default=None, help="Soft-target temperature T (default 2)."
)
@click.option(
    "--distill-weight",
    type=float,
    default=None,
    help="Weight of the soft-target term (default 1).",
)
@click.option(
    "--progress", type=click.Choice(PROGRESS), default=None, help="Progress display (default auto)."
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML with any of these options (flags override it).",
)
def train(config_path: Path | None, **flags: Any) -> None:
    """Train a zoo model or a checkpoint; write best.keras/last.keras (+ spec and labels).

    The run folder (--out) gets checkpoint/ (weights + optimizer + epoch after every epoch),
    history.csv, curves.png (train vs validation loss and metrics: over-fitting shows as the
    lines parting), logs/ (TensorBoard) and config.yaml. A killed run continues with --resume
    (same --out; its config.yaml is reused, flags given now override it).

    \b
    Examples:
      edgekit train --model ssdlite_mobilenet_v2 --data coco128/ --img 320 --epochs 100
      edgekit train --model mobilenet_v2 --data flowers/ --init runs/a/best.keras --freeze backbone
      edgekit import ssd_teacher.tflite -o teacher.keras
      edgekit train --model teacher.keras --data people/ --img 224 --teacher teacher.keras
      edgekit train --config train.yaml --batch 64 --strategy mirrored --mixed-precision
      edgekit train --out runs/train --resume
      edgekit export runs/train/best.keras --format int8
      edgekit eval runs/train/best.keras --data coco128/ --split val
    """
    from edgekit.train.config import load_yaml, make_config
    from edgekit.train.fit import train as run_training

    given = {k: v for k, v in flags.items() if v is not None}
    if "format_" in given:
        given["format"] = given.pop("format_")
    base: dict[str, Any] = load_yaml(config_path) if config_path else {}
    if given.get("resume"):
        out = Path(given.get("out") or base.get("out") or "runs/train")
        saved = out / "config.yaml"
        if saved.is_file():
            base = {**load_yaml(saved), **base}
    config = make_config(base, **given)
    result = run_training(config, echo=click.echo)
    last = result.history[-1] if result.history else {}
    summary = " ".join(f"{k} {v:.4g}" for k, v in last.items() if k not in ("epoch", "seconds"))
    click.echo(
        f"trained {config.model}: {result.epochs} epochs ({result.replicas} replica(s)); {summary}"
    )
    click.echo(
        f"wrote {result.best} and {result.last} (+ .spec.json, labels.txt), curves {result.out / 'curves.png'}"
    )
