"""``edgekit export``: a registry model or a .keras checkpoint -> a self-describing .tflite."""

from __future__ import annotations

from pathlib import Path

import click

FORMAT_NAMES = ("float32", "float16", "dynamic", "int8", "edgetpu")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMAT_NAMES),
    default="int8",
    show_default=True,
    help="float32; float16 (half-size weights); dynamic (int8 weights, float compute); "
    "int8 (full integer, calibrated); edgetpu (int8, then edgetpu_compiler).",
)
@click.option("--edgetpu", is_flag=True, help="Same as --format edgetpu.")
@click.option(
    "--img", "img", type=int, default=None, help="Input size (square) for a registry model."
)
@click.option(
    "--num-classes", type=int, default=None, help="Number of classes for a registry model."
)
@click.option("--width", type=float, default=None, help="Width multiplier for a registry model.")
@click.option(
    "--calib",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder of images to calibrate int8 on (default: sample photos shipped with matplotlib/scikit-image).",
)
@click.option(
    "--calib-samples", type=int, default=100, show_default=True, help="Calibration samples."
)
@click.option(
    "--nms",
    is_flag=True,
    help="Put NMS inside the model (SSD: TFLite_Detection_PostProcess; YOLO: NON_MAX_SUPPRESSION_V4).",
)
@click.option(
    "--max-detections", type=int, default=100, show_default=True, help="With --nms: boxes kept."
)
@click.option(
    "--uint8-io/--int8-io",
    default=True,
    show_default=True,
    help="Input/output dtype of int8 models.",
)
@click.option(
    "--labels",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Label file to embed (one per line, or 'id name').",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output .tflite file.",
)
def export(
    model: str,
    fmt: str,
    edgetpu: bool,
    img: int | None,
    num_classes: int | None,
    width: float | None,
    calib: Path | None,
    calib_samples: int,
    nms: bool,
    max_detections: int,
    uint8_io: bool,
    labels: Path | None,
    out: Path | None,
) -> None:
    """Export MODEL to TFLite with its spec and labels embedded (edgekit runs it with no flags).

    MODEL is a registry name (untrained weights: measure an architecture's cost on a device
    before training it; see `edgekit models list`) or a saved .keras checkpoint.

    \b
    Examples:
      edgekit export mobilenet_v2 --img 224 --format int8 --out mnv2_int8.tflite
      edgekit export ssdlite_mobilenet_v2 --img 320 --nms --calib photos/ --out det.tflite
      edgekit export runs/best.keras --format edgetpu --labels labels.txt
      edgekit bench mnv2_int8.tflite
    """
    from edgekit.errors import UsageError
    from edgekit.export.edgetpu import summarize
    from edgekit.export.nms import NMSConfig
    from edgekit.export.tflite import ExportConfig, load_source

    if edgetpu:
        if fmt not in ("int8", "edgetpu"):
            raise UsageError(f"--edgetpu conflicts with --format {fmt}")
        fmt = "edgetpu"
    label_tuple = None
    if labels is not None:
        from edgekit.core.artifact import parse_labels

        label_tuple = parse_labels(labels.read_text(encoding="utf-8", errors="replace"))
    keras_model, spec = load_source(
        model, input_size=(img, img) if img else None, num_classes=num_classes, width=width
    )
    config = ExportConfig(
        format=fmt,
        out=out,
        io_dtype="uint8" if uint8_io else "int8",
        nms=nms,
        nms_config=NMSConfig(max_detections=max_detections),
        calib_dir=calib,
        calib_samples=calib_samples,
        labels=label_tuple,
    )
    result = _run_with_progress(keras_model, spec, config)
    size_mb = result.size_bytes / 1e6
    click.echo(
        f"wrote {result.path} ({size_mb:.2f} MB, {result.format}, input {result.spec.input_dtype} "
        f"{result.spec.input_size[0]}x{result.spec.input_size[1]}, decoder {result.spec.decoder}, "
        f"{result.seconds:.1f}s)"
    )
    click.echo(f"Edge TPU: {summarize(result.edgetpu_report)}")
    if result.compiled is not None:
        c = result.compiled
        click.echo(
            f"edgetpu_compiler {c.version}: {c.ops_on_edgetpu}/{c.total_ops} ops on the Edge TPU, "
            f"on-chip {c.on_chip_memory}, off-chip {c.off_chip_memory}"
        )


def _run_with_progress(keras_model, spec, config):  # type: ignore[no-untyped-def]
    from edgekit.export.formats import get_format
    from edgekit.export.tflite import export_model

    if not get_format(config.format).needs_calibration:
        return export_model(keras_model, spec, config)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("calibrating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("calibrate", total=config.calib_samples)
        return export_model(
            keras_model, spec, config, progress=lambda done, total: bar.update(task, completed=done)
        )
