"""The recipe runner for classifier students (a zoo classifier or a ``.keras`` checkpoint) on an
image-folder dataset: every stage of :mod:`edgekit.compress.recipes` (train, distill with a
linear probe for a teacher of other classes, finetune, prune, structured, qat and the exports),
each measured by :mod:`edgekit.compress.recipes.measure`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.compress.recipes.config import (
    TRAIN_STAGES,
    CompressConfig,
    Stage,
    StageResult,
    is_checkpoint,
)
from edgekit.compress.recipes.measure import (
    artifact_path,
    gzip_size,
    run_stages,
    score_artifact,
    stage_guard,
)
from edgekit.errors import UsageError

__all__ = ["run_classify_recipe"]


@dataclass
class _State:
    model: Any
    spec: Any
    labels: tuple[str, ...]
    train: Any  # ClassifyData
    teacher_logits: np.ndarray | None = None
    float_artifact: Path | None = None
    qat_model: Any = None  # the qat stage's model, exported as int8


def _student(config: CompressConfig, num_classes: int) -> tuple[Any, Any, bool]:
    """(model, spec, trained?) from a registry name or a .keras checkpoint."""
    from edgekit.export.tflite import load_source
    from edgekit.zoo import registry

    if is_checkpoint(config.student):
        model, spec = load_source(config.student)
        return model, spec, True
    entry = registry.get_entry(config.student)
    model = entry.create(num_classes, config.input_size, config.width)
    return model, entry.spec(model), False


def _teacher(config: CompressConfig) -> Any:
    from edgekit.compress.teacher import KerasTeacher, TFLiteTeacher

    t = str(config.teacher)
    if not Path(t).is_file():
        raise UsageError(f"{t}: teacher model not found")
    if t.endswith(".tflite"):
        return TFLiteTeacher(t, threads=config.threads)
    from edgekit.export.tflite import load_source

    model, spec = load_source(t)
    return KerasTeacher(model, spec)


def run_classify_recipe(
    config: CompressConfig, *, log: Callable[[str], None] = print
) -> list[StageResult]:
    """Run every stage of ``config`` for a classifier student; writes artifacts and
    report.{md,json,png} under ``out``."""
    import keras

    from edgekit.compress.distill import load_classify_data
    from edgekit.data.images import is_image_folder, read_image_folder

    if not is_image_folder(config.data):
        raise UsageError(
            f"{config.data}: the recipe runner needs an image-folder dataset (ROOT/<class>/<image>)"
        )
    names = read_image_folder(config.data).class_names
    keras.utils.set_random_seed(config.seed)
    model, spec, trained = _student(config, len(names))
    first = config.stages[0].name
    if not trained and first not in ("train", "distill"):
        raise UsageError(
            f"{config.student} is untrained: start the recipe with train or distill, not {first}"
        )
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    train = load_classify_data(
        config.data,
        spec,
        split="train",
        val_fraction=config.val_fraction,
        seed=config.seed,
        flip=config.flip,
    )
    state = _State(model, spec, tuple(names), train)
    results: list[StageResult] = []
    if trained:
        with stage_guard(config, "input", results, log):
            results.append(
                _measure(
                    config, state, Stage("input"), "float32", time.perf_counter(), {}, log, index=0
                )
            )

    def run_stage(stage: Stage, t0: float) -> StageResult:
        run = CLASSIFY_STAGES.get(stage.name)  # the export stages only export and measure
        details = run(config, state, stage) if run is not None else {}
        fmt = "int8-qat" if stage.name == "qat" else "float32" if run else stage.name
        qm = state.qat_model if fmt == "int8-qat" else None
        return _measure(config, state, stage, fmt, t0, details, log, qmodel=qm, index=len(results))

    return run_stages(config, results, log, run_stage)


def _fit_labels(state: _State) -> tuple[np.ndarray, np.ndarray]:
    sel = state.train.y >= 0
    return state.train.x[sel], state.train.y[sel]


def _train_stage(config: CompressConfig, state: _State, stage: Stage) -> dict[str, Any]:
    from edgekit.compress.distill import teacher_targets, train_classifier
    from edgekit.compress.teacher import LinearProbe, TeacherCache

    details: dict[str, Any] = {"epochs": config.epochs}
    logits = None
    if stage.name == "distill":
        teacher = _teacher(config)
        cache = TeacherCache(config.cache_dir or config.out / "teacher_cache")
        raw = teacher_targets(teacher, state.train, cache)
        n = len(state.labels)
        if raw.shape[1] != n:
            sel = state.train.y >= 0
            groups = [str(p) for p in state.train.paths]
            logits = LinearProbe.fit(raw[sel], state.train.y[sel], n, l2=1e-2)(raw)
            logits[sel] = LinearProbe.cross_fit(
                raw[sel],
                state.train.y[sel],
                n,
                groups=[g for g, s in zip(groups, sel, strict=True) if s],
                l2=1e-2,
            )
            details["probe"] = (
                f"linear probe {raw.shape[1]} -> {n} classes (out-of-fold on labelled images)"
            )
            details["teacher_train_top1"] = float(
                (logits[sel].argmax(1) == state.train.y[sel]).mean()
            )
        else:
            logits = raw
        details.update(teacher=str(config.teacher), alpha=config.alpha, temperature=config.soft_temperature(False),
                       cache_hits=cache.hits, cache_misses=cache.misses)  # fmt: skip
        state.teacher_logits = logits
    hist = train_classifier(
        state.model, state.train, teacher_logits=logits, alpha=config.alpha, temperature=config.soft_temperature(False),
        epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate, seed=config.seed,
    )  # fmt: skip
    details["final_loss"] = hist["loss"][-1]
    return details


def _finetune(config: CompressConfig, state: _State, model: Any) -> None:
    from edgekit.compress.distill import train_classifier

    train_classifier(
        model, state.train, teacher_logits=state.teacher_logits, alpha=config.alpha,
        temperature=config.soft_temperature(False), epochs=config.finetune_epochs or config.epochs,
        batch_size=config.batch_size, learning_rate=config.finetune_learning_rate, seed=config.seed,
    )  # fmt: skip


def _finetune_stage(config: CompressConfig, state: _State, stage: Stage) -> dict[str, Any]:
    _finetune(config, state, state.model)
    return {"epochs": config.finetune_epochs or config.epochs}


def _qat_stage(config: CompressConfig, state: _State, stage: Stage) -> dict[str, Any]:
    from edgekit.compress.quantize import qat

    state.qat_model = qat(
        state.model, state.train.x, state.train.y,
        epochs=config.finetune_epochs or config.epochs, batch_size=config.batch_size,
        learning_rate=config.finetune_learning_rate, seed=config.seed,
    )  # fmt: skip
    return {}


def _prune_stage(config: CompressConfig, state: _State, stage: Stage) -> dict[str, Any]:
    from edgekit.compress.prune import prune_finetune

    x, y = _fit_labels(state)
    _, report = prune_finetune(
        state.model, x, y, float(stage.arg), epochs=config.finetune_epochs or config.epochs,
        batch_size=config.batch_size, learning_rate=config.finetune_learning_rate, seed=config.seed,
    )  # fmt: skip
    return {"target_sparsity": stage.arg, "sparsity_per_layer": report}


def _structured_stage(config: CompressConfig, state: _State, stage: Stage) -> dict[str, Any]:
    from edgekit.compress.structured import param_count, prune_channels

    before = param_count(state.model)
    thin, plan = prune_channels(state.model, float(stage.arg))
    _finetune(config, state, thin)
    state.model = thin
    return {
        "ratio": stage.arg,
        "params_before": before,
        "params_after": param_count(thin),
        "channels": {k: [plan.before[k], plan.after[k]] for k in plan.keep},
    }


#: What each stage does to a classifier student before it is exported and measured (the export
#: stages int8/float16/dynamic/float32 only export and measure). A new stage: its algorithm in
#: compress/, its name in recipes/config.py, and a row here.
CLASSIFY_STAGES: dict[str, Callable[[CompressConfig, _State, Stage], dict[str, Any]]] = {
    "train": _train_stage,
    "distill": _train_stage,
    "finetune": _finetune_stage,
    "prune": _prune_stage,
    "structured": _structured_stage,
    "qat": _qat_stage,
}


def _measure(
    config: CompressConfig,
    state: _State,
    stage: Stage,
    fmt: str,
    t0: float,
    details: dict[str, Any],
    log: Callable[[str], None],
    qmodel: Any = None,
    index: int = 0,
) -> StageResult:
    from edgekit.compress.prune import sparsity_report
    from edgekit.compress.quantize import export_qat, post_training, quant_error
    from edgekit.compress.structured import param_count

    calib = dict(calib_dir=config.data, calib_samples=config.calib_samples)
    if qmodel is not None:
        target = artifact_path(config, index, stage, "int8")
        path = export_qat(qmodel, state.spec, target, labels=state.labels, **calib)
    else:
        extra = calib if fmt == "int8" else {}
        path = post_training(
            state.model,
            state.spec,
            artifact_path(config, index, stage, fmt),
            format=fmt,
            labels=state.labels,
            **extra,
        ).path
    if fmt == "float32":
        state.float_artifact = path
        if stage.name in TRAIN_STAGES:
            state.model.save(path.with_suffix(".keras"))
    elif state.float_artifact is not None and fmt in ("int8", "int8-qat"):
        from edgekit.compress.layer_error import layer_errors
        from edgekit.data.images import read_rgb

        images = [read_rgb(p) for p in _val_images(config)]
        details["quant_error"] = quant_error(state.float_artifact, path, images).to_dict()
        try:
            rows = layer_errors(state.float_artifact, path, images)
            details["layer_error"] = [r.to_dict() for r in rows]
        except UsageError as exc:  # e.g. QAT's graph names its ops differently
            details["layer_error"] = str(exc)
    ev, latency_ms = score_artifact(config, path, "folder")
    sp = sparsity_report(state.model)
    result = StageResult(
        stage=stage.label,
        artifact=path.name,
        format=fmt,
        accuracy=float(ev.metrics["top1"]),
        size_bytes=path.stat().st_size,
        gzip_bytes=gzip_size(path),
        params=param_count(state.model),
        sparsity=float(sp["total"]),
        latency_ms=latency_ms,
        seconds=time.perf_counter() - t0,
        details=details,
    )
    log(
        f"  {result.artifact}: top1 {result.accuracy:.3f}, {result.size_bytes / 1e3:.0f} kB "
        f"(gzip {result.gzip_bytes / 1e3:.0f} kB), {result.params:,} params, sparsity "
        f"{result.sparsity:.2f}, {result.latency_ms:.2f} ms ({config.threads} thread)"
    )
    return result


def _val_images(config: CompressConfig, limit: int = 32) -> list[Path]:
    from edgekit.data.load import load_dataset

    ds = load_dataset(
        config.data, "folder", split="val", val_fraction=config.val_fraction, seed=config.seed
    )
    return [r.path for r in ds.images[:limit]]
