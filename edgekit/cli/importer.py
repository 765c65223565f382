"""``edgekit import``: a .tflite model -> a trainable float Keras checkpoint (+ spec)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("import", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output .keras file (default: MODEL's name with .keras); its .spec.json goes next to it.",
)
@click.option(
    "--check",
    "check",
    default="sample",
    show_default=True,
    help="Images (folder, glob, video, 'sample') to compare the imported model with the "
    "original on; 'none' skips the check.",
)
@click.option(
    "--check-images", type=int, default=8, show_default=True, help="How many of them to use."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def import_(model: Path, out: Path | None, check: str, check_images: int, as_json: bool) -> None:
    """Rebuild MODEL (.tflite) as a float Keras model you can fine-tune, thin and re-export.

    Weights are dequantized; an SSD's TFLite_Detection_PostProcess and MoveNet's decoding tail
    become edgekit's own decoder again (export with --nms puts the SSD op back). The spec
    (task, labels, anchors, keypoints, input normalization) is written next to the .keras
    file, so export, train, eval and compress read it. An operator edgekit cannot translate
    stops the import with an error naming it.

    The check runs the original (integer) and the imported (float) model on the same images
    and prints their difference in quantization steps of the original's outputs, plus the
    share of the original's detections (or keypoints) the imported model reproduces.

    \b
    Examples:
      edgekit import ssd_mobilenet_v1_quant.tflite -o teacher.keras
      edgekit import movenet_lightning.tflite -o movenet.keras --check photos/
      edgekit export teacher.keras --format int8 --nms --calib photos/
      edgekit compress --student teacher.keras --teacher teacher.keras --data people/ ...
    """
    from edgekit.errors import UsageError
    from edgekit.zoo.importer import agreement, import_tflite, save_imported

    if check_images < 1:
        raise UsageError(f"--check-images must be >= 1, got {check_images}")
    imported = import_tflite(model)
    target = save_imported(imported, out or model.with_suffix(".keras"))
    result: dict = {
        "keras": str(target),
        "spec": str(target.with_suffix(".spec.json")),
        "family": imported.family,
        "task": imported.spec.task,
        "decoder": imported.spec.decoder,
        "translated_ops": imported.translated_ops,
        "replaced_ops": imported.replaced_ops,
    }
    lines = [imported.describe(), f"wrote {target} and {target.with_suffix('.spec.json').name}"]
    if check.lower() != "none":
        images = _images(check, check_images)
        agree = agreement(imported, images)
        result["agreement"] = agree.to_dict()
        lines += agree.lines()
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo("\n".join(lines))


def _images(source: str, limit: int) -> list:
    from edgekit.io.sources import open_source

    images = []
    with open_source(source) as frames:
        for frame in frames:
            images.append(frame.image)
            if len(images) >= limit:
                break
    return images
