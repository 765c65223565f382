"""``edgekit explain``: a Grad-CAM heatmap of what drove a Keras model's prediction."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model")
@click.argument("image", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    help="PNG to write (default: IMAGE's name + _gradcam.png, in the current folder).",
)
@click.option(
    "--class",
    "target_class",
    metavar="NAME|ID",
    help="Explain this class (a label or a class id) instead of the top-1 / any class.",
)
@click.option(
    "--layer",
    metavar="NAME",
    help="Feature map to weigh (a layer with a 4-D output; default: the last map before the "
    "pooling, or for detectors the map of the scale that made the detection).",
)
@click.option(
    "--box",
    "box",
    type=click.IntRange(min=0),
    metavar="K",
    help="Detectors: explain detection K of the decoded list (0 = the best; with --class, of "
    "that class).",
)
@click.option(
    "--method",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "gradcam", "hirescam"]),
    help="gradcam: channels weighed by their mean gradient; hirescam: gradient x activation "
    "per position (instance-specific). auto: gradcam for classifiers, hirescam for detectors.",
)
@click.option(
    "--alpha",
    default=0.45,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Opacity of the heatmap over the image.",
)
@click.option(
    "--input-size",
    type=click.IntRange(min=32),
    help="Zoo model names only: build at this input size (default: the model's).",
)
@click.option(
    "--arch", help="Keras checkpoints: the zoo model name (default: from the model's name)."
)
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(path_type=Path),
    help="Class names of the model (one per line, or 'id name').",
)
def explain(
    model: str,
    image: Path,
    out: Path | None,
    target_class: str | None,
    layer: str | None,
    box: int | None,
    method: str,
    alpha: float,
    input_size: int | None,
    arch: str | None,
    labels_path: Path | None,
) -> None:
    """Show which regions of IMAGE drove MODEL's prediction (Grad-CAM), as a PNG heatmap
    over the image at its original size.

    MODEL is a Keras checkpoint (.keras; gradients are needed, so not the .tflite export) or a
    zoo model name (random weights: a smoke check of the plumbing). Classifiers: the gradient
    of the class score (top-1 unless --class) w.r.t. the last feature map before the pooling.
    Detectors (SSDLite, YOLO-tiny): the score of the best detection (or --box K) w.r.t. the
    feature map of the scale that produced it, weighed per position (--method hirescam), so
    other objects of the class do not light up. The heatmap is mapped back through the same
    resize/letterbox as the runtime, so it lines up with the image. Needs TensorFlow.

    \b
    Examples:
      edgekit explain runs/cls/best.keras cat.jpg --out cat_cam.png
      edgekit explain runs/cls/best.keras cat.jpg --class dog --layer block_13_expand_relu
      edgekit explain runs/ssd/best.keras street.jpg --box 2
      edgekit explain mobilenet_v2 photo.jpg --input-size 128
    """
    from edgekit.eval.explain import ExplainConfig
    from edgekit.eval.explain import explain as run_explain

    labels: tuple[str, ...] = ()
    if labels_path is not None:
        from edgekit.runtime.spec import load_labels

        labels = load_labels(labels_path)
    config = ExplainConfig(
        model=model,
        image=image,
        out=out if out is not None else Path(f"{image.stem}_gradcam.png"),
        target_class=target_class,
        layer=layer,
        box=box,
        method=None if method == "auto" else method,
        alpha=alpha,
        input_size=input_size,
        arch=arch,
        labels=labels,
    )
    result = run_explain(config)
    click.echo(f"explained: {result.describe()}")
    for note in result.notes:
        click.echo(f"note: {note}")
    h, w = result.heatmap.shape
    click.echo(f"wrote {result.out} ({w}x{h})")
