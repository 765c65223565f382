"""``edgekit info``: what a model is, without running it."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
@click.option("--no-load", is_flag=True, help="Read the file only; do not create an interpreter.")
def info(model: Path, as_json: bool, no_load: bool) -> None:
    """Describe MODEL (a .tflite file): inputs and outputs with dtypes, shapes and
    quantization; the ops it uses; what kind of model edgekit recognises (task and decoder);
    its labels; whether it was compiled for the Edge TPU and how many of its ops the Edge TPU
    can run.

    Works for models this machine cannot run (e.g. Edge TPU-compiled ones on a CPU): the
    flatbuffer is read directly then.

    \b
    Examples:
      edgekit info model.tflite
      edgekit info model_edgetpu.tflite --json | jq .edgetpu
    """
    from edgekit.describe import describe_model, format_description

    description = describe_model(model, load=not no_load)
    if as_json:
        click.echo(json.dumps(description, indent=2))
    else:
        click.echo(format_description(description))
