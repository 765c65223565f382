"""``edgekit compress``: distill, prune, quantize a classifier, detector or pose model; one report of every stage."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--student",
    help="Student: a zoo classifier or detector name (mobilenet_v2, ssdlite_mobilenet_v2) or a "
    ".keras checkpoint (a classifier, or a detector with its .spec.json, e.g. from `edgekit import`).",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="Classifiers: an image folder ROOT/<class>/<image>; detectors: a COCO/YOLO/VOC dataset. Split into train/val like `edgekit eval`.",
)
@click.option(
    "--recipe",
    "recipe",
    help="Stages in order, e.g. distill,prune:0.5,qat  or  train,structured:0.5,int8 "
    "(train, distill, finetune, prune:S, structured:R, qat, int8, float16, dynamic), "
    "or a YAML file. `finetune` is the dense control for prune/qat.",
)
@click.option(
    "--teacher",
    help="Teacher for distill: any .tflite (e.g. an ImageNet classifier, an SSD) or a .keras "
    "model. An SSD teacher also gives SSD students per-anchor soft targets.",
)
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs per training stage [10].")
@click.option(
    "--finetune-epochs",
    type=click.IntRange(min=1),
    help="Epochs of finetune/prune/structured/qat fine-tuning [= --epochs].",
)
@click.option(
    "--input-size", type=click.IntRange(min=16), help="Student input size in pixels [96]."
)
@click.option("--width", type=float, help="Student width multiplier (alpha) [0.35].")
@click.option("--batch-size", type=click.IntRange(min=1), help="Batch size [32].")
@click.option(
    "--learning-rate", type=click.FloatRange(min=0, min_open=True), help="Training stages [1e-3]."
)
@click.option(
    "--finetune-learning-rate",
    type=click.FloatRange(min=0, min_open=True),
    help="finetune/prune/structured/qat stages [3e-4].",
)
@click.option(
    "--alpha", type=click.FloatRange(0, 1), help="Weight of the teacher's soft targets [0.9]."
)
@click.option(
    "--temperature",
    type=click.FloatRange(min=0, min_open=True),
    help="Distillation temperature [4 for classifiers' softmax, 1 for detectors' sigmoid scores].",
)
@click.option("--seed", type=int, help="Seed for the split, initialization and shuffling [0].")
@click.option("--threads", type=click.IntRange(min=1), help="Threads for latency measurement [1].")
@click.option("--bench-runs", type=click.IntRange(min=1), help="Timed runs per stage [50].")
@click.option("--out", type=click.Path(path_type=Path), help="Output folder [compress_out].")
@click.option(
    "--video",
    "videos",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Detectors: a video whose frames the teacher labels as extra training data (repeatable).",
)
@click.option("--every-n", type=click.IntRange(min=1), help="Detectors: every n-th frame [3].")
@click.option("--classes", help="Detectors: comma list of classes to keep, e.g. person [all].")
@click.option(
    "--teacher-score",
    type=click.FloatRange(0, 1),
    help="Detectors: teacher boxes below this score are dropped [0.5].",
)
@click.option(
    "--init",
    type=click.Path(path_type=Path),
    help="Detectors: initial weights (.keras, layers matched by name), e.g. an ImageNet backbone.",
)
@click.option(
    "--max-labelled",
    type=click.IntRange(min=1),
    help="Detectors: use only the first N labelled training images (data-scaling runs).",
)
@click.option(
    "--repeat-labelled",
    type=click.IntRange(min=1),
    help="Detectors: each labelled image this many times next to the video frames [1].",
)
@click.option(
    "--mosaic",
    type=click.FloatRange(0, 1),
    help="Detectors: probability of a 2x2 mosaic training image [0]; 0.5 helps small data.",
)
@click.option("--freeze", help="Detectors: freeze 'backbone' or the first N blocks while training.")
@click.option(
    "--val-data",
    type=click.Path(exists=True, path_type=Path),
    help="Detectors: score every stage on all of this dataset and train on all of --data "
    "(instead of splitting --data).",
)
@click.option(
    "--teacher-boxes/--no-teacher-boxes",
    default=None,
    help="Detectors: add the .tflite teacher's boxes where the dataset has no human box "
    "[on]; turn off for completely labelled photos (soft targets stay).",
)
@click.option(
    "--distill-weight",
    type=click.FloatRange(min=0),
    help="Detectors: weight of the SSD teacher's per-anchor soft targets (distill stage) [1].",
)
def compress(recipe, videos, **options) -> None:
    """Compress a classifier, a detector or a pose model stage by stage and report each stage.

    Every stage is exported (.tflite with the spec embedded; detectors with NMS inside),
    evaluated on the held-back split through `edgekit eval` (top-1, AP50 for detectors,
    PCK@0.1 for pose models),
    sized (bytes, gzip bytes), and timed through `edgekit bench`. A detection teacher is
    measured first on the same split and bench. Writes OUT/report.md, report.json and
    report.png (accuracy vs latency vs size).

    A detector student can be the teacher itself brought in by `edgekit import`: its classes
    are cut to --classes, its input set by --input-size, structured:R thins it, and the
    distill stage trains it on the labels plus the teacher's per-anchor soft targets at
    --temperature (a teacher .tflite is imported for that on the fly). A pose student (e.g.
    MoveNet brought in by `edgekit import`) learns from the pose teacher's keypoints on the
    person crops of a detection dataset (--data, --val-data).

    \b
    Examples:
      edgekit compress --student mobilenet_v2 --data crops/ \\
          --teacher mobilenet_v2_1.0_224_quant.tflite --recipe distill,prune:0.5,int8
      edgekit compress --student model.keras --data crops/ --recipe structured:0.5,qat
      edgekit compress --student ssdlite_mobilenet_v2 --width 1.0 --input-size 224 \\
          --data coco128/ --video vtest.avi --classes person \\
          --teacher coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite --recipe distill,int8
      edgekit import ssd_teacher.tflite -o teacher.keras
      edgekit compress --student teacher.keras --teacher ssd_teacher.tflite \\
          --data people/train.yaml --val-data people/valid.yaml --classes person \\
          --no-teacher-boxes --input-size 224 --recipe distill,int8,structured:0.25,int8
      edgekit import movenet_lightning.tflite -o pose.keras
      edgekit compress --student pose.keras --teacher movenet_lightning.tflite \\
          --data people/train.yaml --val-data people/valid.yaml --input-size 128 \\
          --recipe distill,int8
      edgekit compress --recipe recipe.yaml     (stages: [...] plus any option above)
    """
    from edgekit.compress.recipes import CompressConfig, load_recipe, parse_recipe, run_recipe
    from edgekit.compress.report import markdown_table
    from edgekit.errors import UsageError

    given = {k: v for k, v in options.items() if v is not None}
    if videos:
        given["videos"] = tuple(videos)
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


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--recipe",
    default="static_wi8_ai8",
    show_default=True,
    help="ai-edge-quantizer recipe: static_wi8_ai8 (full int8), static_wi8_ai16, "
    "dynamic_wi8_afp32, weight_only_wi8_afp32, dynamic_wi4_afp32.",
)
@click.option(
    "--calib",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of images for the static recipes' calibration (searched recursively).",
)
@click.option("--calib-samples", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Output [MODEL_<recipe>.tflite].")
def quantize(model: Path, recipe: str, calib: Path | None, calib_samples: int, out) -> None:
    """Quantize an existing float .tflite with an ai-edge-quantizer recipe, keeping its spec.

    For models whose Keras source you do not have; for edgekit's own models `edgekit export
    --format int8` and `edgekit compress` quantize from Keras. Needs edgekit[quantizer].

    \b
    Example:
      edgekit quantize model_float.tflite --recipe static_wi8_ai8 --calib images/
    """
    from edgekit.compress.ai_edge_quantizer import quantize_tflite
    from edgekit.data.images import read_rgb
    from edgekit.export.representative import list_images

    images = []
    if calib is not None:
        paths = list_images(calib)[:calib_samples]
        images = [read_rgb(p) for p in paths]
    target = out or model.with_name(f"{model.stem}_{recipe}.tflite")
    path = quantize_tflite(model, target, recipe, images)
    click.echo(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB, {recipe})")
