"""``edgekit compress``: distill, prune, quantize a classifier; one report of every stage."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--student", help="Student: a zoo classifier name (e.g. mobilenet_v2) or a .keras checkpoint."
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="Image-folder dataset ROOT/<class>/<image>; split into train/val like `edgekit eval`.",
)
@click.option(
    "--recipe",
    "recipe",
    help="Stages in order, e.g. distill,prune:0.5,qat  or  train,structured:0.5,int8 "
    "(train, distill, prune:S, structured:R, qat, int8, float16, dynamic), or a YAML file.",
)
@click.option(
    "--teacher",
    help="Teacher for distill: any .tflite (e.g. an ImageNet classifier) or a .keras model.",
)
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs per training stage [10].")
@click.option(
    "--finetune-epochs",
    type=click.IntRange(min=1),
    help="Epochs of prune/structured/qat fine-tuning [= --epochs].",
)
@click.option(
    "--input-size", type=click.IntRange(min=16), help="Student input size in pixels [96]."
)
@click.option("--width", type=float, help="Student width multiplier (alpha) [0.35].")
@click.option("--batch-size", type=click.IntRange(min=1), help="Batch size [32].")
@click.option(
    "--alpha", type=click.FloatRange(0, 1), help="Weight of the teacher's soft targets [0.9]."
)
@click.option(
    "--temperature",
    type=click.FloatRange(min=0, min_open=True),
    help="Distillation temperature [4].",
)
@click.option("--seed", type=int, help="Seed for the split, initialization and shuffling [0].")
@click.option("--threads", type=click.IntRange(min=1), help="Threads for latency measurement [1].")
@click.option("--bench-runs", type=click.IntRange(min=1), help="Timed runs per stage [50].")
@click.option("--out", type=click.Path(path_type=Path), help="Output folder [compress_out].")
def compress(recipe, **options) -> None:
    """Compress a classifier stage by stage and report each stage.

    Every stage is exported (.tflite with the spec embedded), evaluated on the validation split
    through `edgekit eval`, sized (bytes, gzip bytes), and timed through `edgekit bench`.
    Writes OUT/report.md, report.json and report.png (accuracy vs latency vs size).

    \b
    Examples:
      edgekit compress --student mobilenet_v2 --data crops/ \\
          --teacher mobilenet_v2_1.0_224_quant.tflite --recipe distill,prune:0.5,int8
      edgekit compress --student model.keras --data crops/ --recipe structured:0.5,qat
      edgekit compress --recipe recipe.yaml     (stages: [...] plus any option above)
    """
    from edgekit.compress.recipe import CompressConfig, load_recipe, parse_recipe, run_recipe
    from edgekit.compress.report import markdown_table
    from edgekit.errors import UsageError

    given = {k: v for k, v in options.items() if v is not None}
    if recipe and recipe.endswith((".yaml", ".yml")):
        config = load_recipe(recipe, **given)
    else:
        if not recipe:
            raise UsageError("--recipe is required (e.g. --recipe distill,prune:0.5,int8)")
        for key in ("student", "data"):
            if key not in given:
                raise UsageError(f"--{key} is required")
        config = CompressConfig(stages=parse_recipe(recipe), **given)
    results = run_recipe(config, log=click.echo)
    click.echo(markdown_table(results))
    click.echo(f"report: {config.out / 'report.md'}")
