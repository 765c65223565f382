"""One compression pipeline: stages run in order, each one exported, evaluated and measured.

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
:func:`edgekit.bench.bench_models` (``threads`` threads). The recipe runner handles
classification students (image-folder datasets) here, and detection and pose students (a zoo
name or a checkpoint, e.g. an imported teacher, and a COCO/YOLO/VOC dataset with person boxes
for pose) in :mod:`edgekit.compress.detect`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ConfigError, StageFailed, UsageError, error_summary

__all__ = [
    "CompressConfig",
    "Stage",
    "StageResult",
    "finished_stages",
    "load_recipe",
    "parse_recipe",
    "run_recipe",
    "stage_guard",
]

TRAIN_STAGES = ("train", "distill", "finetune", "prune", "structured")
EXPORT_STAGES = ("int8", "float16", "dynamic", "float32")
ALL_STAGES = (*TRAIN_STAGES, "qat", *EXPORT_STAGES)


@dataclass(frozen=True)
class Stage:
    """One recipe step: ``name`` and its optional numeric argument (sparsity / ratio)."""

    name: str
    arg: float | None = None

    @property
    def label(self) -> str:
        return self.name if self.arg is None else f"{self.name}:{self.arg:g}"


def parse_recipe(text: str | Sequence[str]) -> tuple[Stage, ...]:
    """``"distill,prune:0.5,qat,int8"`` (or a list of such items) -> stages, validated."""
    items = text.split(",") if isinstance(text, str) else [str(t) for t in text]
    stages = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        name, _, arg = item.partition(":")
        name = name.strip().lower()
        if name == "ptq":
            name = "int8"
        if name not in ALL_STAGES:
            raise UsageError(f"unknown recipe stage {item!r}; stages: {', '.join(ALL_STAGES)}")
        value = None
        if name in ("prune", "structured"):
            try:
                value = float(arg) if arg else 0.5
            except ValueError:
                raise UsageError(f"recipe stage {item!r}: {arg!r} is not a number") from None
            if not 0.0 < value < 1.0:
                raise UsageError(f"recipe stage {item!r}: the fraction must be in (0, 1)")
        elif arg:
            raise UsageError(f"recipe stage {name!r} takes no argument (got {item!r})")
        stages.append(Stage(name, value))
    if not stages:
        raise UsageError("the recipe has no stages")
    qat = [i for i, s in enumerate(stages) if s.name == "qat"]
    if qat and qat[0] != len(stages) - 1:
        raise UsageError("recipe: qat must be the last stage (it ends with the int8 model)")
    return tuple(stages)


@dataclass(frozen=True)
class CompressConfig:
    """Everything ``edgekit compress`` needs. ``epochs`` is per training stage; fine-tuning
    stages (prune, structured, qat) use ``finetune_epochs`` (default: ``epochs``)."""

    student: str
    data: Path
    stages: tuple[Stage, ...]
    teacher: str | None = None
    out: Path = Path("compress_out")
    epochs: int = 10
    finetune_epochs: int | None = None
    input_size: int = 96
    width: float | None = 0.35
    batch_size: int = 32
    learning_rate: float = 1e-3
    finetune_learning_rate: float = 3e-4
    alpha: float = 0.9
    temperature: float = 4.0
    val_fraction: float = 0.2
    seed: int = 0
    calib_samples: int = 64
    bench_runs: int = 50
    threads: int = 1
    flip: bool = True
    cache_dir: Path | None = None
    # detection students (edgekit.compress.detect)
    classes: tuple[str, ...] | None = None
    videos: tuple[Path, ...] = ()
    every_n: int = 3
    teacher_score: float = 0.5
    init: Path | None = None
    freeze: str | None = None
    steps_per_epoch: int | None = None
    eager: bool = False
    max_labelled: int | None = None  # only the first N train-split images (data-scaling runs)
    repeat_labelled: int = 1  # each labelled image this many times next to the video frames
    mosaic: float = 0.0  # probability of a 2x2 mosaic training image
    val_data: Path | None = (
        None  # detectors: score on this dataset (all of it), train on all of data
    )
    distill_weight: float = 1.0  # detectors: weight of the teacher's per-anchor soft targets

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", Path(self.data))
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "videos", tuple(Path(v) for v in self.videos))
        if isinstance(self.classes, str):
            object.__setattr__(self, "classes", tuple(self.classes.split(",")))
        elif self.classes is not None:
            object.__setattr__(self, "classes", tuple(self.classes))
        for name in ("init", "val_data"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        for v in self.videos:
            if not v.is_file():
                raise UsageError(f"--video {v}: no such file")
        if self.every_n < 1 or self.repeat_labelled < 1:
            raise UsageError("every_n and repeat_labelled must be >= 1")
        if not 0.0 <= self.mosaic <= 1.0:
            raise UsageError(f"mosaic must be in [0, 1], got {self.mosaic}")
        if isinstance(self.stages, str) or (self.stages and not isinstance(self.stages[0], Stage)):
            object.__setattr__(self, "stages", parse_recipe(self.stages))
        if self.epochs < 1 or (self.finetune_epochs is not None and self.finetune_epochs < 1):
            raise UsageError("epochs must be >= 1")
        if any(s.name == "distill" for s in self.stages) and not self.teacher:
            raise UsageError("the distill stage needs a teacher (--teacher MODEL.tflite|.keras)")


def load_recipe(path: str | os.PathLike[str], **overrides: Any) -> CompressConfig:
    """A YAML recipe: ``stages: [distill, "prune:0.5", qat]`` plus any CompressConfig field;
    ``overrides`` (non-None) win."""
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read recipe ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a recipe is a mapping with 'stages:' and options")
    known = {f.name for f in dataclasses.fields(CompressConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{p}: unknown recipe keys {unknown}; known: {sorted(known)}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    if "stages" not in data:
        raise ConfigError(f"{p}: the recipe has no 'stages:' list")
    for k in ("student", "data"):
        if k not in data:
            raise ConfigError(f"{p}: missing {k!r} (or pass --{k})")
    try:
        return CompressConfig(**data)
    except TypeError as exc:
        raise ConfigError(f"{p}: {exc}") from None


@dataclass(frozen=True)
class StageResult:
    """What one stage produced and how it measured."""

    stage: str
    artifact: str
    format: str
    accuracy: float
    size_bytes: int
    gzip_bytes: int
    params: int
    sparsity: float
    latency_ms: float
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)
    metric: str = "top-1"  # what ``accuracy`` is: top-1 (classifiers) or AP50 (detectors)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- the runner ------------------------------------------------------------------------------


@dataclass
class _State:
    model: Any
    spec: Any
    labels: tuple[str, ...]
    train: Any  # ClassifyData
    teacher_logits: np.ndarray | None = None
    float_artifact: Path | None = None


def gzip_size(path: Path) -> int:
    """Bytes of ``path`` gzip-compressed at level 9 (what a download or OTA update costs)."""
    return len(gzip.compress(path.read_bytes(), compresslevel=9))


def artifact_path(config: CompressConfig, index: int, stage: Stage, fmt: str) -> Path:
    """``OUT/NN_<stage>[_<format>].tflite``; the format is left out when the stage names it."""
    stem = f"{index:02d}_{stage.label.replace(':', '_')}"
    suffix = "" if fmt in ("float32", stage.name) else f"_{fmt}"
    return config.out / f"{stem}{suffix}.tflite"


def score_artifact(
    config: CompressConfig, path: Path, data_format: str = "auto", data: Path | None = None
) -> tuple[Any, float]:
    """``path`` scored through ``edgekit eval`` on the held-back split (the one ``edgekit eval
    --split val`` uses; all of ``val_data``, or of ``data``, when given) and its median invoke
    time in ms through ``edgekit bench``."""
    from edgekit.bench.latency import BenchConfig, bench_models
    from edgekit.eval.run import EvalConfig, evaluate_model

    if data is None:
        data, split = (config.val_data, "all") if config.val_data else (config.data, "val")
    else:
        split = "all"
    ev = evaluate_model(
        EvalConfig(model=path, data=data, format=data_format, split=split,
                   val_fraction=config.val_fraction, seed=config.seed, threads=config.threads)
    )  # fmt: skip
    bench = bench_models(
        BenchConfig(
            models=(str(path),), runs=config.bench_runs, warmup=5, threads=(config.threads,)
        )
    )[0]
    return ev, float(bench.stages["invoke"].p50_ms)


def _is_checkpoint(student: str) -> bool:
    return student.endswith(".keras") or Path(student).is_file()


def _dense_student(student: str) -> Any:
    """The zoo or checkpoint entry of a detector or pose student, None for a classifier."""
    from edgekit.zoo import registry
    from edgekit.zoo.checkpoint import CheckpointEntry, checkpoint_spec

    if _is_checkpoint(student):
        spec = checkpoint_spec(student)
        dense = spec is not None and spec.task in ("detect", "pose")
        return CheckpointEntry(Path(student), spec) if dense else None
    entry = registry.get_entry(student)
    return entry if entry.task in ("detect", "pose") else None


def _student(config: CompressConfig, num_classes: int) -> tuple[Any, Any, bool]:
    """(model, spec, trained?) from a registry name or a .keras checkpoint."""
    from edgekit.export.tflite import load_source
    from edgekit.zoo import registry

    if _is_checkpoint(config.student):
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


def run_recipe(config: CompressConfig, *, log: Callable[[str], None] = print) -> list[StageResult]:
    """Run every stage of ``config``; writes artifacts and report.{md,json,png} under ``out``."""
    import keras

    from edgekit.compress.distill import load_classify_data
    from edgekit.compress.report import write_report
    from edgekit.data.images import is_image_folder, read_image_folder

    entry = _dense_student(config.student)
    if entry is not None:
        from edgekit.compress.detect import run_detection_recipe

        keras.utils.set_random_seed(config.seed)
        return run_detection_recipe(config, entry, log=log)
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
    qmodel = None
    for i, stage in enumerate(config.stages):
        t0 = time.perf_counter()
        position = f"[{i + 1}/{len(config.stages)}]"
        log(f"{position} {stage.label}")
        with stage_guard(config, f"{position} {stage.label}", results, log):
            details: dict[str, Any] = {}
            fmt = "float32"
            if stage.name in ("train", "distill"):
                details = _train_stage(config, state, stage)
            elif stage.name == "finetune":
                _finetune(config, state, state.model)
                details = {"epochs": config.finetune_epochs or config.epochs}
            elif stage.name == "prune":
                details = _prune_stage(config, state, stage)
            elif stage.name == "structured":
                details = _structured_stage(config, state, stage)
            elif stage.name == "qat":
                from edgekit.compress.quantize import qat

                qmodel = qat(
                    state.model, state.train.x, state.train.y,
                    epochs=config.finetune_epochs or config.epochs, batch_size=config.batch_size,
                    learning_rate=config.finetune_learning_rate, seed=config.seed,
                )  # fmt: skip
                fmt = "int8-qat"
            else:
                fmt = stage.name
            qm = qmodel if fmt == "int8-qat" else None
            results.append(
                _measure(config, state, stage, fmt, t0, details, log, qmodel=qm, index=len(results))
            )
            write_report(results, out, config)
    return results


def finished_stages(
    config: CompressConfig, results: Sequence[StageResult]
) -> tuple[str, tuple[str, ...]]:
    """A sentence naming the stages that finished, their artifacts and the report (all under
    ``config.out``); and those paths."""
    out = config.out
    paths = [out / r.artifact for r in results if (out / r.artifact).is_file()]
    paths += [out / name for name in ("report.md", "report.json") if (out / name).is_file()]
    if not results:
        return f"no stage finished; see {out}", tuple(str(p) for p in paths)
    done = ", ".join(
        f"{r.stage} ({r.artifact if (out / r.artifact).is_file() else 'measured'})" for r in results
    )
    return (
        f"finished and kept in {out}: {done}; report {out / 'report.md'}",
        tuple(str(p) for p in paths),
    )


@contextlib.contextmanager
def stage_guard(
    config: CompressConfig,
    label: str,
    results: list[StageResult],
    log: Callable[[str], None],
) -> Iterator[None]:
    """Turn any failure inside one stage into :class:`StageFailed` naming the stage, the error
    and what the finished stages left (their artifacts and the report, rewritten to record the
    failure). Ctrl-C says the same and is raised again."""
    from edgekit.compress.report import write_report

    try:
        yield
    except KeyboardInterrupt:
        log(
            f"edgekit compress: interrupted in stage {label}; "
            + finished_stages(config, results)[0]
        )
        raise
    except Exception as exc:
        failed = {"stage": label, "error": error_summary(exc, 2000)}
        with contextlib.suppress(Exception):  # the report is a courtesy: the error is the news
            write_report(results, config.out, config, failed=failed)
        kept, paths = finished_stages(config, results)
        raise StageFailed(
            f"compress stage {label} failed: {error_summary(exc, 600)}; {kept}",
            stage=label,
            kept=paths,
            cause=exc,
        ) from exc


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
        details.update(teacher=str(config.teacher), alpha=config.alpha, temperature=config.temperature,
                       cache_hits=cache.hits, cache_misses=cache.misses)  # fmt: skip
        state.teacher_logits = logits
    hist = train_classifier(
        state.model, state.train, teacher_logits=logits, alpha=config.alpha, temperature=config.temperature,
        epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate, seed=config.seed,
    )  # fmt: skip
    details["final_loss"] = hist["loss"][-1]
    return details


def _finetune(config: CompressConfig, state: _State, model: Any) -> None:
    from edgekit.compress.distill import train_classifier

    train_classifier(
        model, state.train, teacher_logits=state.teacher_logits, alpha=config.alpha,
        temperature=config.temperature, epochs=config.finetune_epochs or config.epochs,
        batch_size=config.batch_size, learning_rate=config.finetune_learning_rate, seed=config.seed,
    )  # fmt: skip


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
