"""``edgekit eval``: score a model (the deployed .tflite or a Keras checkpoint) on a dataset."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--data",
    required=True,
    type=click.Path(path_type=Path),
    help="Dataset: COCO JSON, YOLO folder/data.yaml, VOC folder, or ROOT/<class>/<image> for classifiers.",
)
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "coco", "yolo", "voc", "folder"]),
    help="Dataset format.",
)
@click.option(
    "--split",
    default="val",
    show_default=True,
    type=click.Choice(["val", "train", "all"]),
    help="Which part of the deterministic split (the one training uses) to evaluate.",
)
@click.option(
    "--all", "all_images", is_flag=True, help="Evaluate every image (same as --split all)."
)
@click.option(
    "--val-fraction",
    default=0.2,
    show_default=True,
    type=click.FloatRange(0, 1, max_open=True),
    help="Share of images in the validation part.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Split seed.")
@click.option(
    "--score",
    default=0.001,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Score threshold for detections/poses (keep it low for mAP).",
)
@click.option(
    "--max-dets",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="Detections kept per image (COCO's limit is 100).",
)
@click.option(
    "--max-images",
    type=click.IntRange(min=1),
    help="Evaluate only the first N images of the split.",
)
@click.option(
    "--class-map",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "name", "coco90to80", "none"]),
    help="Model class -> dataset class: by label name (auto/name), the COCO 90->80 id table, or identity.",
)
@click.option(
    "--pck-alpha",
    default=0.1,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Pose: a keypoint is correct within alpha x max(box w, h) of the truth.",
)
@click.option(
    "--threads", type=click.IntRange(min=1), help="Interpreter threads (default: the backend's)."
)
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(path_type=Path),
    help="Class names of the model (one per line, or 'id name'), overriding its own.",
)
@click.option(
    "--arch", help="Keras checkpoints: the zoo model name (default: from the model's name)."
)
@click.option(
    "--json", "json_path", type=click.Path(path_type=Path), help="Write the results as JSON."
)
@click.option(
    "--plot", "plot_path", type=click.Path(path_type=Path), help="Write PR curves (PNG, detection)."
)
@click.option(
    "--top", default=20, show_default=True, type=click.IntRange(min=1), help="Per-class rows shown."
)
@click.option("-q", "--quiet", is_flag=True, help="No tables, no progress.")
def eval_(
    model: Path,
    data: Path,
    fmt: str,
    split: str,
    all_images: bool,
    val_fraction: float,
    seed: int,
    score: float,
    max_dets: int,
    max_images: int | None,
    class_map: str,
    pck_alpha: float,
    threads: int | None,
    labels_path: Path | None,
    arch: str | None,
    json_path: Path | None,
    plot_path: Path | None,
    top: int,
    quiet: bool,
) -> None:
    """Evaluate MODEL on a dataset with standard metrics.

    A .tflite file is decoded by the same code as `edgekit detect`, so the numbers are those of
    the deployed artifact; a .keras checkpoint runs the same preprocessing and decoders (needs
    TensorFlow). Detection: COCO mAP@[.5:.95], AP50, AP75 and per-class AP (faster-coco-eval);
    pose: OKS AP and PCK@alpha; classification: top-1/top-5.

    By default the held-back validation part of the split training uses is evaluated
    (--val-fraction 0.2 --seed 0); --all evaluates every image. Model classes map to dataset
    classes by label name ("motorbike" = "motorcycle"); detections of classes the dataset lacks
    are dropped.

    \b
    Examples:
      edgekit eval ssd.tflite --data coco128 --all
      edgekit eval student.tflite --data coco128 --split val --json val.json --plot pr.png
      edgekit eval movenet.tflite --data person_keypoints.json --all
    """
    from rich.console import Console

    from edgekit.eval import EvalConfig, evaluate_model, report

    for path in (json_path, plot_path):  # before minutes of evaluation, not after
        if path is not None:
            report.check_writable(path)
    labels: tuple[str, ...] = ()
    if labels_path is not None:
        from edgekit.runtime.spec import load_labels

        labels = load_labels(labels_path)
    config = EvalConfig(
        model=model,
        data=data,
        format=fmt,
        split="all" if all_images else split,
        val_fraction=val_fraction,
        seed=seed,
        score_threshold=score,
        max_detections=max_dets,
        max_images=max_images,
        threads=threads,
        class_map=class_map,
        pck_alpha=pck_alpha,
        arch=arch,
        labels=labels,
    )
    console = Console() if sys.stdout.isatty() else Console(width=120)
    show_bar = not quiet and sys.stderr.isatty()
    state: dict = {}

    def on_start(m, ds) -> None:
        if plot_path is not None and m.spec.task != "detect":
            from edgekit.errors import UsageError

            raise UsageError(
                f"--plot draws PR curves of detectors; {m.name} is a {m.spec.task} model"
            )
        if not quiet:
            console.print(
                f"{m.name}: {m.spec.task} ({m.spec.decoder}, {m.backend.name}) on {data} "
                f"(split {config.split}): {len(ds)} images, {ds.num_boxes} objects, "
                f"{ds.num_classes} classes",
                markup=False,
            )
        if show_bar:
            from rich.progress import Progress

            bar = Progress(console=Console(stderr=True), transient=True)
            bar.start()
            state["bar"] = bar
            state["task"] = bar.add_task("images", total=len(ds))

    def progress(done: int, total: int) -> None:
        if "bar" in state:
            state["bar"].update(state["task"], completed=done)

    try:
        result = evaluate_model(config, progress=progress, on_start=on_start)
    finally:
        if "bar" in state:
            state["bar"].stop()
    if not quiet:
        console.print(report.metrics_table(result))
        table = report.per_class_table(result, top=top)
        if table is not None:
            console.print(table)
        for note in result.notes:
            console.print(f"note: {note}", markup=False)
    written: list[str] = []
    try:
        if json_path is not None:
            written.append(str(report.write_json(result, json_path)))
            if not quiet:
                console.print(f"wrote {json_path}")
        if plot_path is not None:
            written.append(str(report.plot_pr_curves(result, plot_path)))
            if not quiet:
                console.print(f"wrote {plot_path}")
    except Exception as exc:
        raise _report_failed(exc, result, written, quiet, console) from exc


def _report_failed(
    exc: Exception, result: Any, written: list[str], quiet: bool, console: Any
) -> Exception:
    """The evaluation finished but writing a report failed: keep the numbers (printed now if
    -q hid them) and say what was written."""
    from edgekit.errors import StageFailed, error_summary
    from edgekit.eval import report

    if quiet:  # the metrics would otherwise be lost with the report
        console.print(report.metrics_table(result))
    kept = f"; written: {', '.join(written)}" if written else ""
    return StageFailed(
        f"evaluation finished but its report failed: {error_summary(exc)}{kept}; the metrics "
        "are printed above",
        stage="report",
        kept=tuple(written),
        cause=exc,
    )
