"""``train(config)``: the library side of ``edgekit train``.

Reads the dataset, splits it as ``edgekit eval`` does (``split_dataset(val_fraction, seed)``),
builds the zoo model with raw heads inside the distribution strategy's scope, compiles it with
the task's losses (``edgekit.train.losses``), AdamW and a warm-up + cosine schedule, feeds it
with ``edgekit.data.pipeline.make_pipeline`` + the task's target encoder
(``edgekit.data.encode``), and writes into ``config.out``:

- ``checkpoint/state.weights.h5`` + ``state.json``: weights, optimizer state and epoch, after
  every epoch (``--resume`` continues from there: same epochs, optimizer step count continues);
- ``last.keras`` / ``best.keras`` (deployable: YOLO/pose raw heads wrapped with the in-graph
  decode) with ``last.spec.json`` / ``best.spec.json`` and ``labels.txt``: what ``edgekit export``
  and ``edgekit eval`` read;
- ``history.csv``, ``curves.png`` (train vs val loss and metrics), ``logs/`` (TensorBoard),
  ``config.yaml`` (the run's TrainConfig).
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import (
    DatasetError,
    DependencyMissing,
    StageFailed,
    UsageError,
    error_summary,
)
from edgekit.train.config import TrainConfig

__all__ = [
    "HEAD_KINDS",
    "TrainResult",
    "backbone_layer_blocks",
    "freeze_layers",
    "train",
    "what_was_kept",
]

log = logging.getLogger(__name__)

#: Zoo decoder -> the head kind that picks encoder, losses and metrics.
HEAD_KINDS = {"classify": "classify", "ssd_raw": "ssd", "yolo": "yolo", "movenet": "pose"}


@dataclass(frozen=True)
class TrainResult:
    """What a run produced. ``initial_epoch``: epochs already done when this call started
    (non-zero when resumed); ``iterations``: optimizer steps in total."""

    out: Path
    best: Path
    last: Path
    epochs: int
    initial_epoch: int
    iterations: int
    replicas: int
    history: tuple[dict[str, float], ...]
    mixed_precision: bool


# ------------------------------------------------------------------------------------- data
# ----------------------------------------------------------------------------------- freezing
def backbone_layer_blocks(entry: Any, input_size: tuple[int, int]) -> dict[str, int]:
    """Backbone layer name -> block number (the number in the zoo's names: ``block_3_*``,
    ``conv_dw_3``; a layer without one keeps the block before it; the stem is block 0)."""
    import re

    import keras

    from edgekit.zoo.backbones import get_backbone

    bb = get_backbone(entry.backbone)
    inputs = keras.Input(shape=(*input_size, 3), name="image")
    feats = bb.features(inputs, bb.default_width, keras)
    probe = keras.Model(inputs, list(dict(feats).values()))
    blocks: dict[str, int] = {}
    current = 0
    for layer in probe.layers:
        m = re.search(r"_(\d+)(?:_|$)", layer.name)
        if m:
            current = max(current, int(m.group(1)))
        blocks[layer.name] = current
    del probe
    return blocks


def freeze_layers(model: Any, blocks: dict[str, int], freeze: str) -> int:
    """Set ``trainable=False`` on the backbone ("backbone") or its first N blocks; returns the
    number of frozen layers (their BatchNorms then run in inference mode)."""
    limit = math.inf if freeze == "backbone" else int(freeze)
    n = 0
    for layer in model.layers:
        block = blocks.get(layer.name)
        if block is not None and block < limit and layer.weights:
            layer.trainable = False
            n += 1
    if n == 0:
        raise UsageError(f"--freeze {freeze}: no backbone layer of {model.name} matched")
    return n


def set_bn_momentum(
    model: Any, momentum: float | None, total_steps: int, *, synchronized: bool = False
) -> float:
    """Set every BatchNormalization's momentum (None = auto, see ``TrainConfig.bn_momentum``)
    and whether its batch statistics are all-reduced over replicas; returns the momentum."""
    import keras

    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if momentum is None:
        zoo = max((float(b.momentum) for b in bns), default=0.99)
        momentum = min(zoo, max(0.5, 1.0 - 20.0 / max(total_steps, 1)))
    for b in bns:
        b.momentum = float(momentum)
        b.synchronized = bool(synchronized)
    return float(momentum)


def init_from(model: Any, path: Path) -> tuple[int, int]:
    """Copy weights from a checkpoint into ``model`` layer by layer (same name and shapes);
    returns (layers copied, layers with weights)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--init {p}: no such checkpoint")
    if p.name.endswith(".weights.h5"):
        model.load_weights(str(p), skip_mismatch=True)
        with_weights = sum(1 for layer in model.layers if layer.weights)
        return with_weights, with_weights
    try:
        from edgekit.zoo.saving import load_keras_model

        src = load_keras_model(p)
    except Exception as exc:
        raise UsageError(f"--init {p}: cannot load Keras model ({exc})") from None
    by_name = {layer.name: layer for layer in src.layers}
    copied = total = 0
    for layer in model.layers:
        if not layer.weights:
            continue
        total += 1
        other = by_name.get(layer.name)
        if other is None:
            continue
        w_new, w_old = layer.get_weights(), other.get_weights()
        if len(w_new) == len(w_old) and all(
            a.shape == b.shape for a, b in zip(w_new, w_old, strict=False)
        ):
            layer.set_weights(w_old)
            copied += 1
    if copied == 0:
        raise UsageError(f"--init {p}: no layer matches {model.name} by name and shape")
    return copied, total


# --------------------------------------------------------------------------------- decoders
def _ssd_decoder(params: dict[str, Any]) -> Callable[[list[np.ndarray]], list[Any]]:
    from edgekit.core.anchors import ssd_anchors
    from edgekit.runtime.decoders.ssd import decode_raw

    anchors = ssd_anchors(**params["anchors"])

    def decode(outs: list[np.ndarray]) -> list[Any]:
        return decode_raw(
            outs[0],
            outs[1],
            anchors,
            scales=params.get("scales", (10, 10, 5, 5)),
            has_background=True,
            scores_are_logits=True,
            activation=params.get("activation", "sigmoid"),
            score_threshold=0.05,
            iou_threshold=0.5,
            max_detections=100,
        )

    return decode


def _yolo_decoder(
    input_size: tuple[int, int], num_classes: int
) -> Callable[[list[np.ndarray]], list[Any]]:
    from edgekit.data.encode import yolo_levels
    from edgekit.runtime.decoders.yolo import decode as yolo_decode

    points, strides = yolo_levels(input_size)
    h, w = input_size

    def decode(outs: list[np.ndarray]) -> list[Any]:
        d = outs[0].astype(np.float64) * strides[:, None]
        x0, y0 = points[:, 0] - d[:, 0], points[:, 1] - d[:, 1]
        x1, y1 = points[:, 0] + d[:, 2], points[:, 1] + d[:, 3]
        boxes = np.stack([(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h])
        scores = 1.0 / (1.0 + np.exp(-outs[1].astype(np.float64).T))
        return yolo_decode(
            np.concatenate([boxes, scores]),
            input_size=input_size,
            normalized=True,
            num_classes=num_classes,
            score_threshold=0.05,
            iou_threshold=0.5,
        )

    return decode


def _collect(ds: Any, limit: int) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
    images, targets = [], []
    for image, t in ds.take(limit):
        images.append(image.numpy())
        targets.append({k: v.numpy() for k, v in t.items()})
    return np.stack(images).astype(np.float32), targets


# ------------------------------------------------------------------------------------ train
def _steps(n_examples: int, batch: int, cap: int | None) -> int:
    steps = n_examples // batch
    return min(steps, cap) if cap else steps


def train(
    config: TrainConfig,
    *,
    callbacks: Sequence[Any] = (),
    echo: Callable[[str], None] = print,
    model: Any | None = None,
) -> TrainResult:
    """Train ``config.model`` on ``config.data`` (module docstring); ``callbacks`` are added
    after edgekit's own (e.g. to stop a run in tests). ``model``: train this Keras model (e.g.
    a structurally pruned one of the same zoo family, weights kept) instead of building
    ``config.model`` afresh; its outputs must match what ``config.model`` would build."""
    try:
        import keras
        import tensorflow  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the train extra
        raise DependencyMissing(
            "training needs TensorFlow", hint="pip install 'edgekit[train]'"
        ) from exc
    import yaml

    from edgekit.data import split_dataset
    from edgekit.data.augment import AugmentConfig
    from edgekit.data.encode import make_encode_fn
    from edgekit.data.load import load_dataset
    from edgekit.data.pipeline import PipelineConfig, make_pipeline
    from edgekit.train import callbacks as cb
    from edgekit.train.distribute import make_strategy, set_mixed_precision, worker_index
    from edgekit.train.losses import losses_for
    from edgekit.train.schedule import WarmupCosine
    from edgekit.zoo.checkpoint import model_entry

    entry = model_entry(config.model)
    kind = HEAD_KINDS.get(entry.decoder)
    if kind is None:
        raise UsageError(f"{config.model}: training is not supported for decoder {entry.decoder!r}")
    out = Path(config.out)
    keras.utils.set_random_seed(config.seed)
    mixed = set_mixed_precision(config.mixed_precision)
    strategy = make_strategy(config.strategy)
    replicas = int(strategy.num_replicas_in_sync)
    worker = worker_index(strategy)
    if worker:
        out = out / f"worker{worker}"
    ckpt_dir = out / "checkpoint"
    state = cb.read_state(ckpt_dir)
    if state is not None and not config.resume:
        raise UsageError(
            f"{out} already holds a run (checkpoint/state.json)",
            hint="pass --resume, or another --out",
        )
    if config.resume and state is None:
        echo(f"edgekit train: nothing to resume in {out}; starting from scratch")

    dataset = load_dataset(config.data, config.format)
    if kind == "pose" and not dataset.keypoint_names:
        raise DatasetError(
            f"{config.data}: {config.model} needs keypoint annotations; this dataset has none"
        )
    class_names = ("person",) if kind == "pose" else dataset.class_names
    num_classes = len(class_names)
    train_ds, val_ds = split_dataset(dataset, config.val_fraction, config.seed)
    size = (config.img, config.img) if config.img else tuple(entry.default_input_size)

    if config.batch % replicas:
        raise UsageError(f"--batch {config.batch} is not divisible by the {replicas} replicas")

    build_kwargs: dict[str, Any] = {"decode": False} if kind in ("yolo", "pose") else {}
    if kind != "pose":
        build_kwargs["labels"] = class_names
    model_classes = None if kind == "pose" else num_classes
    with strategy.scope():
        if model is None:
            model = entry.create(model_classes, size, config.width, **build_kwargs)
        else:  # rebuilt inside the strategy's scope, weights carried over
            if tuple(model.input_shape[1:3]) != tuple(size):
                raise UsageError(
                    f"the given model takes {tuple(model.input_shape[1:3])} images, "
                    f"the config says img={size[0]}"
                )
            given, model = model, keras.models.clone_model(model)
            model.set_weights(given.get_weights())
    spec = entry.spec(size, labels=class_names if kind != "pose" else ())

    # --- data
    crop_context = 0.0 if dataset.source_format == "folder" else config.crop_context
    augment = AugmentConfig(mosaic=config.mosaic) if config.augment else None
    mode = "classify_crops" if kind == "classify" else "detect"
    if kind == "classify":
        encode = make_encode_fn("classify", num_classes=num_classes)
        count = lambda d: sum(int((~r.iscrowd).sum()) for r in d.images)  # noqa: E731
    elif kind == "ssd":
        from edgekit.core.anchors import ssd_anchors

        params = spec.decoder_params
        encode = make_encode_fn(
            "ssd", anchors=ssd_anchors(**params["anchors"]), scales=params["scales"]
        )
        count = len
    elif kind == "yolo":
        encode = make_encode_fn("yolo", input_size=size, num_classes=num_classes)
        count = len
    else:
        grid = (int(o) for o in model.outputs[0].shape[1:3])
        encode = make_encode_fn(
            "pose", grid=tuple(grid), num_keypoints=int(model.outputs[2].shape[-1])
        )
        count = len
    steps = _steps(count(train_ds), config.batch, config.steps_per_epoch)
    if steps < 1:
        raise UsageError(
            f"{config.data}: {count(train_ds)} training examples make no full batch of {config.batch}",
            hint="lower --batch or --val-fraction",
        )

    def pipeline(ds: Any, training: bool, enc: Any, batch: int | None) -> Any:
        pc = PipelineConfig(
            batch_size=batch,
            training=training,
            augment=augment,
            max_boxes=config.max_boxes,
            mode=mode,
            crop_context=crop_context,
            seed=config.seed,
        )
        return make_pipeline(ds, spec, pc, encode_fn=enc)

    train_pipe = pipeline(train_ds, True, encode, config.batch)
    if config.teacher is not None:
        train_pipe = _with_soft_targets(train_pipe, config, kind, spec, class_names, echo)
    if config.steps_per_epoch:
        train_pipe = train_pipe.take(steps)
    has_val = len(val_ds) > 0
    val_pipe = pipeline(val_ds, False, encode, config.batch) if has_val else None

    # --- compile
    losses, weights = losses_for(
        kind,
        label_smoothing=config.label_smoothing,
        soft_weight=config.distill_weight if config.teacher is not None else 0.0,
        temperature=config.temperature,
    )
    total_steps = steps * config.epochs
    schedule = WarmupCosine(config.lr, total_steps, round(config.warmup_epochs * steps))
    with strategy.scope():
        optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay)
        if config.init is not None:
            copied, total = init_from(model, config.init)
            echo(f"edgekit train: initialised {copied}/{total} layers from {config.init}")
        if config.freeze:
            if not entry.backbone:
                raise UsageError(
                    f"--freeze counts the blocks of a zoo backbone; {config.model} has none"
                )
            n = freeze_layers(model, backbone_layer_blocks(entry, size), config.freeze)
            echo(f"edgekit train: froze {n} layers ({config.freeze})")
        set_bn_momentum(
            model, config.bn_momentum, total_steps, synchronized=config.sync_bn and replicas > 1
        )
        metrics = ["accuracy"] if kind == "classify" else None
        model.compile(
            optimizer=optimizer,
            loss=losses if len(losses) > 1 else losses[0],
            loss_weights=weights if len(weights) > 1 else None,
            metrics=metrics,
            jit_compile=False,
            run_eagerly=config.eager,
        )
    initial_epoch = 0
    rows: list[dict[str, float]] = []
    if state is not None:
        with strategy.scope():
            state = cb.StateCheckpoint.restore(model, ckpt_dir)
        initial_epoch = int(state["epoch"])
        rows = list(state.get("history", []))
        echo(
            f"edgekit train: resumed {out} after epoch {initial_epoch} (step {state['iterations']})"
        )
    out.mkdir(parents=True, exist_ok=True)
    cb.atomic_write(out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))

    # --- callbacks
    own: list[Any] = []
    monitor, mode_ = ("val_loss", "min") if has_val else ("loss", "min")
    if has_val and kind == "classify":
        monitor, mode_ = "val_accuracy", "max"
    if has_val and kind in ("ssd", "yolo", "pose"):
        images, targets = _collect(pipeline(val_ds, False, None, None), config.metric_max_images)
        if kind == "pose":
            own.append(cb.PoseMetrics(images, targets))
            monitor, mode_ = "val_pck", "max"
        else:
            decode = (
                _ssd_decoder(spec.decoder_params)
                if kind == "ssd"
                else _yolo_decoder(size, num_classes)
            )
            own.append(cb.DetectionMetrics(images, targets, decode, class_names, size))
            monitor, mode_ = "val_AP50", "max"
    recorder = cb.EpochRecorder(out, rows)
    best_prev = None
    mon = [r[monitor] for r in rows if monitor in r and np.isfinite(r[monitor])]
    if mon:
        best_prev = max(mon) if mode_ == "max" else min(mon)
    own += [
        recorder,
        cb.SaveModels(
            out,
            _deployable(entry, kind, size, config.width, mixed, class_names),
            lambda m: entry.spec(m, labels=class_names if kind != "pose" else ()),
            class_names,
            monitor,
            mode_,
            best_prev,
        ),
        cb.StateCheckpoint(ckpt_dir, recorder),
        cb.Progress(config.progress, config.epochs, steps),
    ]
    if config.tensorboard and importlib.util.find_spec("tensorboard") is None:
        echo("edgekit train: TensorBoard is not installed: no logs/ (pip install tensorboard)")
    elif config.tensorboard:
        own.append(
            keras.callbacks.TensorBoard(
                log_dir=str(out / "logs"), write_graph=False, profile_batch=0
            )
        )

    last = out / "last.keras"
    try:
        if initial_epoch < config.epochs:
            model.fit(
                train_pipe,
                validation_data=val_pipe,
                epochs=config.epochs,
                initial_epoch=initial_epoch,
                callbacks=[*own, *callbacks],
                shuffle=False,  # the pipeline shuffles
                verbose=0,
            )
        if not last.exists():  # nothing ran (a finished run resumed): write from the weights
            saver = next(c for c in own if isinstance(c, cb.SaveModels))
            saver.set_model(model)
            saver.save("last")
    except KeyboardInterrupt:
        echo(f"edgekit train: interrupted; {what_was_kept(out, config.epochs)[0]}")
        raise
    except Exception as exc:
        kept, paths = what_was_kept(out, config.epochs)
        raise StageFailed(
            f"training {config.model} failed: {error_summary(exc)}; {kept}",
            stage="train",
            kept=paths,
            cause=exc,
        ) from exc
    iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    return TrainResult(
        out=out,
        best=out / "best.keras",
        last=last,
        epochs=len(recorder.rows),
        initial_epoch=initial_epoch,
        iterations=iterations,
        replicas=replicas,
        history=tuple(recorder.rows),
        mixed_precision=mixed,
    )


def load_teacher(path: Path | str) -> tuple[Any, Any]:
    """A float Keras teacher and its spec: a ``.keras`` checkpoint with its spec, or a
    ``.tflite`` translated by ``edgekit import``."""
    p = Path(path)
    if p.suffix.lower() == ".tflite":
        from edgekit.zoo.importer import import_tflite

        imported = import_tflite(p)
        return imported.raw, imported.spec
    from edgekit.zoo.checkpoint import CheckpointEntry

    entry = CheckpointEntry.from_path(p)
    return entry.create(), entry.base


def _with_soft_targets(
    pipe: Any, config: TrainConfig, kind: str, spec: Any, labels: Sequence[str], echo: Any
) -> Any:
    """``pipe`` with the teacher's soft class targets appended (SSD students)."""
    import tensorflow as tf

    from edgekit.train.soft_targets import ssd_soft_target_fn

    if kind != "ssd":
        raise UsageError(
            f"--teacher gives per-anchor soft targets to SSD students; {config.model} is a "
            f"{kind} model"
        )
    teacher, teacher_spec = load_teacher(config.teacher)
    if teacher_spec.decoder != "ssd_raw":
        raise UsageError(
            f"--teacher {config.teacher}: an SSD teacher with raw outputs is needed, "
            f"this one has decoder {teacher_spec.decoder!r}"
        )
    fn = ssd_soft_target_fn(teacher, teacher_spec, spec, labels, temperature=config.temperature)
    echo(
        f"edgekit train: soft targets from {config.teacher} at T={config.temperature:g}, "
        f"weight {config.distill_weight:g}"
    )
    return pipe.map(fn, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


#: What a run folder may hold once epochs finished, in the order a message lists them.
_KEPT = ("checkpoint", "best.keras", "last.keras", "history.csv", "curves.png")


def what_was_kept(out: Path, epochs: int) -> tuple[str, tuple[str, ...]]:
    """A sentence saying how many of ``epochs`` finished in the run folder ``out``, what is
    kept there and how to go on (``--resume``); and the kept paths."""
    from edgekit.train.callbacks import read_state

    state = read_state(out / "checkpoint")
    done = int(state["epoch"]) if state else 0
    paths = tuple(str(out / name) for name in _KEPT if (out / name).exists())
    if done == 0 or not paths:
        return f"no epoch finished, nothing to resume in {out}", paths
    names = ", ".join(Path(p).name for p in paths)
    return (
        f"{done} of {epochs} epochs finished and are kept in {out} ({names}); continue with "
        f"`edgekit train --out {out} --resume`",
        paths,
    )


def _deployable(
    entry: Any,
    kind: str,
    size: tuple[int, int],
    width: float | None,
    mixed: bool,
    labels: Sequence[str] = (),
) -> Callable[[Any], Any]:
    """``model -> deployable keras.Model``: the raw YOLO/pose heads wrapped with the in-graph
    decode (sharing weights); with mixed precision, a float32 copy first (TFLite export and the
    decode layers want float32)."""

    def make(model: Any) -> Any:
        import keras

        src = model
        if mixed:
            kw: dict[str, Any] = {"decode": False} if kind in ("yolo", "pose") else {}
            if kind != "pose":
                kw["labels"] = tuple(labels)
            n = None if kind == "pose" else _num_classes(model, kind)
            prev = keras.mixed_precision.global_policy()
            keras.mixed_precision.set_global_policy("float32")
            try:
                src = entry.create(n, size, width, **kw)
            finally:
                keras.mixed_precision.set_global_policy(prev)
            src.set_weights(model.get_weights())
        if kind == "yolo":
            from edgekit.zoo.yolo import add_yolo_decode

            return add_yolo_decode(src)
        if kind == "pose":
            from edgekit.zoo.pose import add_movenet_decode

            return add_movenet_decode(src)
        return src

    return make


def _num_classes(model: Any, kind: str) -> int:
    shape = model.outputs[-1].shape if kind != "classify" else model.outputs[0].shape
    n = int(shape[-1])
    return n - 1 if kind == "ssd" else n
