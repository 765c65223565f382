"""The recipe runner for detection and pose students (SSDLite, YOLO-tiny, the MoveNet-style
model from the zoo, or a checkpoint such as a teacher brought in by ``edgekit import``).

The teacher (any detection ``.tflite``, e.g. SSD MobileNet V1 COCO) labels the TRAIN split of a
COCO/YOLO/VOC dataset plus every ``every_n``-th frame of ``videos``; human labels win where they
exist (:func:`edgekit.train.pseudo_label.build_detection_dataset`). When the teacher is an SSD
that edgekit can import (or a ``.keras`` SSD checkpoint) and the student is an SSD, its
per-anchor class scores are also soft targets (:mod:`edgekit.train.soft_targets`, weight
``distill_weight``, temperature ``temperature``). :func:`edgekit.train.train` fits the student,
and every stage is exported with NMS inside, scored through ``edgekit eval`` on the held-back
split (the one ``edgekit eval --split val`` uses, or all of ``val_data``) and timed through
``edgekit bench``. The teacher itself is measured first, on the same split and the same bench,
so each stage reads against it in one report.

Pose students (the zoo's MoveNet-style model, or an imported MoveNet) run the same stages:
their training data are square person crops of the dataset's person boxes labelled by the pose
teacher (:func:`edgekit.train.pseudo_label.build_pose_dataset`; ``train`` uses the dataset's
own keypoints), and each stage is scored by PCK@0.1 on crops of the held-back people labelled
the same way (the teacher's own keypoints are the reference: it scores 1.0 there).

Stages: ``distill`` (teacher + human labels), ``train`` (human labels only), ``finetune``,
``structured:R`` (thinner expansion layers, then fine-tuning), and the exports ``int8``,
``float16``, ``dynamic``, ``float32``. Magnitude pruning and QAT go through TFMOT's tf-keras
twin, which edgekit builds for classifiers only; they are refused here with that reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgekit.compress.recipes.config import EXPORT_STAGES, Stage, StageResult
from edgekit.compress.recipes.measure import (
    artifact_path,
    gzip_size,
    run_stages,
    score_artifact,
    stage_guard,
)
from edgekit.errors import DatasetError, UsageError

__all__ = ["DENSE_STAGES", "DETECT_STAGES", "run_detection_recipe"]

MIN_CROP_PX = 48.0  # pose: people whose box is smaller than this (pixels) are not cropped
CROP_SIZE = 192  # pose: crop side in pixels (MoveNet Lightning's input)


@dataclass
class _State:
    entry: Any = None  # the student's zoo or checkpoint entry
    log: Callable[[str], None] = print
    pose: bool = False
    labelled: str = "train"  # how a distill stage labels its data: "distill" with a teacher
    train_split: Any = None
    classes: tuple[str, ...] = ()
    model: Any = None
    spec: Any = None
    data_yaml: Path | None = None
    runs: int = 0
    soft_teacher: Path | None = None
    eval_data: Path | None = None  # pose: the held-back crops the stages are scored on


def run_detection_recipe(
    config: Any, entry: Any, *, log: Callable[[str], None] = print
) -> list[Any]:
    """Run ``config`` (a :class:`~edgekit.compress.recipes.config.CompressConfig`) for the
    detection or pose student ``entry`` (a zoo entry or a checkpoint's); writes artifacts,
    training runs and report.{md,json,png} under ``config.out``."""
    from edgekit.data import split_dataset
    from edgekit.data.load import load_dataset

    bad = [s.label for s in config.stages if s.name not in DETECT_STAGES]
    if bad:
        raise UsageError(
            f"{config.student} is a detector: stage(s) {', '.join(bad)} are not supported for "
            "detectors (magnitude pruning and QAT need TFMOT's tf-keras twin, built for "
            f"classifiers only); detector stages: {', '.join(DETECT_STAGES)}"
        )
    from edgekit.zoo.checkpoint import CheckpointEntry

    trains = ("train", "distill")
    fresh = not isinstance(entry, CheckpointEntry) and config.init is None  # a zoo build
    if fresh and config.stages[0].name not in trains:
        raise UsageError(
            f"{config.student} is untrained: start the recipe with train or distill, or pass "
            "--init CHECKPOINT.keras (a .keras checkpoint student may start with any stage)"
        )
    if isinstance(entry, CheckpointEntry):  # built as saved: no width multiplier
        config = replace(config, width=None)
    pose = entry.task == "pose"
    teacher = str(config.teacher) if config.teacher is not None else ""
    if pose and teacher and not teacher.endswith(".tflite"):
        raise UsageError(f"{teacher}: a pose teacher is a .tflite model (e.g. MoveNet)")
    if teacher and not teacher.endswith((".tflite", ".keras")):
        raise UsageError(f"{teacher}: a detection teacher is a .tflite or a .keras SSD checkpoint")
    dataset = load_dataset(config.data)
    if dataset.source_format == "folder":
        raise DatasetError(f"{config.data}: a {entry.task} student needs a COCO/YOLO/VOC dataset")
    classes = ("person",) if pose else tuple(config.classes or dataset.class_names)
    missing = [c for c in classes if c not in dataset.class_names]
    if missing:
        raise UsageError(
            f"--classes {', '.join(missing)}: not in {config.data}'s classes "
            "(held-back evaluation needs their ground truth)"
        )
    if config.val_data is not None:  # a separate evaluation set: train on all of data
        train_split, val_split = dataset, load_dataset(config.val_data)
    else:
        train_split, val_split = split_dataset(dataset, config.val_fraction, config.seed)
    if config.max_labelled is not None:
        train_split = train_split.subset(range(min(config.max_labelled, len(train_split))))
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    results: list[Any] = []
    # the teacher's boxes join the labels (a .tflite teacher, unless turned off); soft targets
    # come with any SSD teacher
    labelled = "distill" if teacher.endswith(".tflite") and config.teacher_boxes else "train"
    state = _State(entry, log, pose, labelled, train_split, classes)
    if pose:
        state.eval_data = _pose_data(config, "val", val_split, log)
    if teacher.endswith(".tflite"):  # the deployed teacher, on the same split and bench
        with stage_guard(config, "teacher", results, log):
            t0 = time.perf_counter()
            results.append(
                _measure(config, Path(teacher), Stage("teacher"), "teacher", t0, {}, log, state)
            )
    if teacher and not pose:
        state.soft_teacher = _soft_teacher(config, entry, log)
    if not fresh and config.stages[0].name not in trains:  # a trained input: measured first
        with stage_guard(config, "input", results, log):
            state.model, state.spec = _from_init(config, entry, classes)
            state.data_yaml = _train_data(config, pose, labelled, train_split, classes, log)
            t0 = time.perf_counter()
            stage_input = Stage("input")
            measured = _measure(config, state.model, stage_input, "float32", t0, {}, log, state,
                                len(results))  # fmt: skip
            results.append(measured)

    def run_stage(stage: Stage, t0: float) -> StageResult:
        run = DENSE_STAGES.get(stage.name)  # the export stages only export and measure
        details = run(config, state, stage) if run is not None else {}
        fmt = "float32" if run is not None else stage.name
        return _measure(config, state.model, stage, fmt, t0, details, log, state, len(results))

    return run_stages(config, results, log, run_stage)


def _train_stage(config: Any, state: _State, stage: Stage) -> dict[str, Any]:
    how = state.labelled if stage.name == "distill" else "train"
    state.data_yaml = _train_data(
        config, state.pose, how, state.train_split, state.classes, state.log
    )
    return _fit(config, state.entry, state, config.epochs, config.learning_rate,
                freeze=config.freeze, init=config.init, log=state.log,
                soft=stage.name == "distill")  # fmt: skip


def _finetune_stage(config: Any, state: _State, stage: Stage) -> dict[str, Any]:
    return _fit(config, state.entry, state, _ft_epochs(config), config.finetune_learning_rate,
                model=state.model, log=state.log)  # fmt: skip


def _structured_stage(config: Any, state: _State, stage: Stage) -> dict[str, Any]:
    from edgekit.compress.structured import param_count, prune_channels
    from edgekit.zoo.checkpoint import raw_heads

    before = param_count(state.model)
    images = _calibration(config, state)
    thin, _ = prune_channels(raw_heads(state.model), float(stage.arg), images=images)
    details = _fit(config, state.entry, state, _ft_epochs(config), config.finetune_learning_rate,
                   model=thin, log=state.log)  # fmt: skip
    details.update(ratio=stage.arg, params_before=before, params_after=param_count(state.model))
    return details


#: What each stage does to a detection or pose student before it is exported and measured (the
#: export stages only export and measure). Magnitude pruning and QAT are not here: they need
#: TFMOT's tf-keras twin, which edgekit builds for classifiers only. A new stage: its name in
#: recipes/config.py and a row here.
DENSE_STAGES: dict[str, Callable[[Any, _State, Stage], dict[str, Any]]] = {
    "train": _train_stage,
    "distill": _train_stage,
    "finetune": _finetune_stage,
    "structured": _structured_stage,
}
DETECT_STAGES = (*DENSE_STAGES, *EXPORT_STAGES)


def _calibration(config: Any, state: _State, n: int = 32) -> Any:
    """``n`` training images preprocessed for the model: what structured pruning measures
    channels on."""
    import numpy as np

    from edgekit.export.representative import representative_samples

    images = state.data_yaml.parent / "images" if state.data_yaml else None
    samples = representative_samples(state.spec, n, calib_dir=images, seed=config.seed)
    return np.concatenate(list(samples))


def _ft_epochs(config: Any) -> int:
    return config.finetune_epochs or config.epochs


def _train_data(
    config: Any, pose: bool, how: str, train_split: Any, classes: tuple[str, ...], log: Any
) -> Path:
    """The training set of a stage: person crops for pose students, boxes for detectors."""
    if pose:
        return _pose_data(config, "distill" if how == "distill" else "train", train_split, log)
    return _data(config, how, train_split, classes, log)


def _pose_data(config: Any, how: str, split: Any, log: Any) -> Path:
    """Person crops of ``split`` labelled by the pose teacher (``distill``, and the held-back
    ``val`` crops, lossless PNG), or ``split``'s own keypoints (``train``)."""
    from edgekit.train.pseudo_label import build_pose_dataset, person_crops

    if how == "train" or (how == "val" and split.keypoint_names and not config.teacher):
        if not split.keypoint_names:
            raise DatasetError(
                f"{config.data}: no keypoints to train a pose student on; use distill with a "
                "pose teacher (.tflite) to label person crops"
            )
        return _as_yaml(config, f"data_pose_{how}", split)
    if not config.teacher:
        raise UsageError("a pose student needs a pose teacher (--teacher MODEL.tflite)")
    folder = config.out / f"data_pose_{how}"
    yaml_path = folder / "data.yaml"
    if yaml_path.is_file():
        log(f"  reusing {yaml_path}")
        return yaml_path
    crops = person_crops(split, min_size_px=MIN_CROP_PX, human=True)
    log(f"  pose teacher labels {len(crops)} person crops ({how}) -> {folder}")
    ds = build_pose_dataset(
        folder,
        config.teacher,
        crops,
        size=CROP_SIZE,
        image_format="png" if how == "val" else "jpg",
        threads=config.threads,
    )
    log(f"  {len(ds)} crops kept (>= 5 keypoints scoring >= 0.3)")
    return yaml_path


def _as_yaml(config: Any, name: str, split: Any) -> Path:
    """``split`` written as a YOLO dataset (images linked) under ``config.out``."""
    from edgekit.data.yolo_txt import write_yolo

    folder = config.out / name
    if not (folder / "data.yaml").is_file():
        write_yolo(split, folder, images="symlink")
    return folder / "data.yaml"


def _data(config: Any, how: str, train_split: Any, classes: tuple[str, ...], log: Any) -> Path:
    """The training set as YOLO-txt: teacher + human labels (distill) or human labels only."""
    from edgekit.data import Dataset
    from edgekit.data.yolo_txt import write_yolo
    from edgekit.train.pseudo_label import build_detection_dataset, human_labels_for

    folder = config.out / f"data_{how}"
    yaml_path = folder / "data.yaml"
    if yaml_path.is_file():
        log(f"  reusing {yaml_path}")
        return yaml_path
    if how == "distill":
        videos = ", ".join(Path(v).name for v in config.videos) or "no videos"
        log(f"  teacher labels {len(train_split)} train images + {videos} -> {folder}")
        ds = build_detection_dataset(
            folder,
            config.teacher,
            labelled=train_split,
            videos=config.videos,
            every_n=config.every_n,
            classes=classes,
            score_threshold=config.teacher_score,
            repeat_labelled=config.repeat_labelled,
            threads=config.threads,
        )
        boxes = sum(len(r.boxes) for r in ds.images)
        log(f"  {len(ds)} images, {boxes} boxes")
        return yaml_path
    records = []
    for rec in train_split.images:
        boxes, ids = human_labels_for(rec, train_split.class_names, classes)
        records.append(replace(rec, boxes=boxes, class_ids=ids, iscrowd=None, keypoints=None))
    ds = Dataset(tuple(records), classes, source_format="yolo", root=train_split.root)
    write_yolo(ds, folder, images="symlink")
    return yaml_path


def _soft_teacher(config: Any, entry: Any, log: Callable[[str], None]) -> Path | None:
    """The float SSD teacher whose per-anchor scores become soft targets, or None (with the
    reason logged): a ``.keras`` SSD checkpoint as it is, a ``.tflite`` through ``edgekit
    import`` (saved as ``teacher_import.keras`` in the output folder)."""
    from edgekit.errors import EdgekitError
    from edgekit.zoo.checkpoint import checkpoint_spec, spec_path
    from edgekit.zoo.importer import import_tflite, save_imported

    if entry.decoder != "ssd_raw":
        log(f"  soft targets: none ({entry.name} is not an SSD; teacher boxes are the labels)")
        return None
    path = Path(config.teacher)
    if path.suffix == ".keras":
        spec = checkpoint_spec(path)
        if spec is None or spec.decoder != "ssd_raw":
            raise UsageError(f"{path}: a .keras teacher must be an SSD checkpoint with its spec")
        return path
    target = config.out / "teacher_import.keras"
    if target.is_file() and spec_path(target).is_file():
        return target
    try:
        imported = import_tflite(path)
    except EdgekitError as exc:
        log(f"  soft targets: none ({exc}); teacher boxes only")
        return None
    if imported.spec.decoder != "ssd_raw":
        log(f"  soft targets: none ({path.name} is not an SSD); teacher boxes only")
        return None
    log(f"  soft targets: {path.name} imported as {target.name}")
    return save_imported(imported, target)


def _from_init(config: Any, entry: Any, classes: tuple[str, ...]) -> tuple[Any, Any]:
    """The student built at the recipe's size and classes: a checkpoint with its own weights,
    then ``--init``'s where given."""
    from edgekit.train.fit import init_from

    size = (config.input_size, config.input_size)
    model = entry.create(len(classes), size, config.width, labels=classes)
    if config.init is not None:
        init_from(model, Path(config.init))
    return model, entry.spec(size, labels=classes)


def _fit(
    config: Any,
    entry: Any,
    state: _State,
    epochs: int,
    lr: float,
    *,
    model: Any = None,
    freeze: str | None = None,
    init: Path | None = None,
    log: Callable[[str], None],
    soft: bool = False,
) -> dict[str, Any]:
    from edgekit.export.tflite import load_source
    from edgekit.train.config import TrainConfig
    from edgekit.train.fit import train

    state.runs += 1
    run = config.out / f"run_{state.runs:02d}"
    cfg = TrainConfig(
        model=entry.name,
        data=state.data_yaml,
        format="yolo",
        epochs=epochs,
        batch=config.batch_size,
        img=config.input_size,
        width=config.width,
        lr=lr,
        val_fraction=0.1,
        seed=config.seed,
        out=run,
        init=None if model is not None else init,
        freeze=freeze,
        warmup_epochs=1.0
        if epochs > 2
        else 0.0,  # also after thinning: Adam's first steps are large
        steps_per_epoch=config.steps_per_epoch,
        tensorboard=False,
        progress="plain",
        eager=config.eager,
        mosaic=config.mosaic,
        teacher=state.soft_teacher if soft else None,
        temperature=config.soft_temperature(True),
        distill_weight=config.distill_weight,
    )
    if model is not None and entry.task == "pose":  # training fits the heads, not the decode
        from edgekit.zoo.checkpoint import raw_heads

        model = raw_heads(model)
    result = train(cfg, echo=lambda m: log(f"  {m}"), model=model)
    # the last epoch: the internal val split is partly teacher-labelled, the held-back one decides
    state.model, state.spec = load_source(str(result.last))
    details = {"run": run.name, "epochs": epochs, "learning_rate": lr, "data": str(state.data_yaml)}
    if cfg.teacher is not None:
        details.update(soft_teacher=str(cfg.teacher), temperature=cfg.temperature,
                       distill_weight=cfg.distill_weight)  # fmt: skip
    return details


def _measure(
    config: Any,
    model: Any,
    stage: Any,
    fmt: str,
    t0: float,
    details: dict[str, Any],
    log: Callable[[str], None],
    state: _State | None,
    index: int = 0,
) -> Any:
    from edgekit.compress.structured import param_count

    if fmt == "teacher":
        path, params = model, 0
    elif state is None:
        raise UsageError("internal: a student stage needs the recipe state")
    else:
        path = _export(config, model, state, stage, fmt, index)
        params = param_count(model)
    eval_data = state.eval_data if state is not None else None
    ev, latency_ms = score_artifact(config, Path(path), data=eval_data)
    classes = config.classes or ()
    if eval_data is not None:  # pose
        metric, acc = "PCK@0.1", ev.metrics.get("PCK@0.1", 0.0)
        details = {**details, "OKS AP": ev.metrics.get("AP"), "eval_images": ev.images}
    else:
        if len(classes) == 1:
            metric, acc = f"{classes[0]} AP50", ev.per_class.get(classes[0], {}).get("AP50", 0.0)
        else:
            metric, acc = "AP50", ev.metrics.get("AP50", 0.0)
        details = {**details, "mAP": ev.metrics.get("mAP"), "AP50": ev.metrics.get("AP50"),
                   "eval_images": ev.images}  # fmt: skip
    result = StageResult(
        stage=stage.label,
        artifact=Path(path).name,
        format=fmt,
        accuracy=float(acc),
        size_bytes=Path(path).stat().st_size,
        gzip_bytes=gzip_size(Path(path)),
        params=params,
        sparsity=0.0,
        latency_ms=latency_ms,
        seconds=time.perf_counter() - t0,
        details=details,
        metric=metric,
    )
    log(
        f"  {result.artifact}: {metric} {result.accuracy:.3f}, "
        f"{result.size_bytes / 1e3:.0f} kB, {result.latency_ms:.2f} ms ({config.threads} thread)"
    )
    return result


def _export(config: Any, model: Any, state: _State, stage: Any, fmt: str, index: int) -> Path:
    from edgekit.export.tflite import ExportConfig, export_model

    target = artifact_path(config, index, stage, fmt)
    if fmt == "float32":  # usable as --student or --init of a later run, spec next to it
        from edgekit.zoo.checkpoint import save_checkpoint_spec

        model.save(target.with_suffix(".keras"))
        save_checkpoint_spec(target.with_suffix(".keras"), state.spec)
    images = state.data_yaml.parent / "images" if state.data_yaml else None
    res = export_model(
        model,
        state.spec,
        ExportConfig(
            format=fmt,
            out=target,
            nms=state.spec.decoder == "ssd_raw",
            calib_dir=images if fmt == "int8" else None,
            calib_samples=config.calib_samples,
        ),
    )
    return res.path
