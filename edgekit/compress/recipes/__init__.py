"""``edgekit compress``: one pipeline whose stages run in order, each exported, evaluated and
measured.

A recipe is a comma-separated list (or a YAML file with ``stages:`` and any
:class:`CompressConfig` field). Stages:

- ``train``: hard-label training of the student (``epochs``);
- ``distill``: training on labels + the teacher's soft targets (``alpha``, ``temperature``);
  a ``.tflite`` or ``.keras`` teacher, its outputs cached on disk; a teacher with other classes
  (e.g. an ImageNet classifier) is mapped onto the student's with a linear probe fitted on the
  training split;
- ``finetune``: more float training at the fine-tuning rate (``finetune_epochs``): the control
  that separates what prune/structured/qat fine-tuning buys from what they cost;
- ``prune:S``: magnitude pruning to sparsity S with fine-tuning (TFMOT, tf-keras twin);
- ``structured:R``: remove a fraction R of the expansion channels (L1), then fine-tune;
- ``qat``: quantization-aware fine-tuning, exported as int8;
- ``int8`` / ``float16`` / ``dynamic``: post-training quantization through edgekit.export; these
  only export and measure (the float model goes on to the next stage), so ``int8,qat`` compares
  PTQ with QAT, and ``prune:0.5,int8`` measures the pruned model quantized.

Training stages also save the Keras model (``NN_stage.keras``), usable as ``--student`` of a
later run.

After every stage the model is exported (float32 for training stages), and the artifact is
evaluated through :func:`edgekit.eval.evaluate_model` (top-1 on the validation split that
``edgekit eval`` uses), sized (bytes and gzip bytes), and timed with
:func:`edgekit.bench.bench_models` (``threads`` threads).

One module per part: :mod:`~edgekit.compress.recipes.config` (the recipe and its options),
:mod:`~edgekit.compress.recipes.measure` (scoring, timing, the stage guard),
:mod:`~edgekit.compress.recipes.classify` (classifier students on image folders) and
:mod:`~edgekit.compress.recipes.detect` (detection and pose students: a zoo name or a
checkpoint, e.g. an imported teacher, and a COCO/YOLO/VOC dataset). :func:`run_recipe` picks the
runner from the student.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.compress.recipes.config import (
    CompressConfig,
    Stage,
    StageResult,
    is_checkpoint,
    load_recipe,
    parse_recipe,
)

__all__ = [
    "CompressConfig",
    "Stage",
    "StageResult",
    "load_recipe",
    "parse_recipe",
    "run_recipe",
]


def run_recipe(config: CompressConfig, *, log: Callable[[str], None] = print) -> list[StageResult]:
    """Run every stage of ``config`` with the runner its student needs; writes artifacts and
    report.{md,json,png} under ``config.out``."""
    entry = _dense_student(config.student)
    if entry is None:
        from edgekit.compress.recipes.classify import run_classify_recipe

        return run_classify_recipe(config, log=log)
    import keras

    from edgekit.compress.recipes.detect import run_detection_recipe

    keras.utils.set_random_seed(config.seed)
    return run_detection_recipe(config, entry, log=log)


def _dense_student(student: str) -> Any:
    """The zoo or checkpoint entry of a detector or pose student, None for a classifier."""
    from edgekit.zoo import registry
    from edgekit.zoo.checkpoint import CheckpointEntry, checkpoint_spec

    if is_checkpoint(student):
        spec = checkpoint_spec(student)
        dense = spec is not None and spec.task in ("detect", "pose")
        return CheckpointEntry(Path(student), spec) if dense else None
    entry = registry.get_entry(student)
    return entry if entry.task in ("detect", "pose") else None
