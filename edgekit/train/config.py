"""``TrainConfig``: every knob of ``edgekit train`` in one frozen dataclass, and its YAML loader.

The YAML keys are the dataclass fields (the CLI flags with ``-`` -> ``_``); flags given on the
command line override the file. ``load_yaml`` names the file and key when something is wrong.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import ConfigError, UsageError

__all__ = ["STRATEGIES", "TrainConfig", "load_yaml", "make_config"]

STRATEGIES = ("auto", "mirrored", "multiworker", "one")
PROGRESS = ("auto", "rich", "plain", "none")


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    - ``model``: a zoo name (``edgekit models list``); ``data``: a COCO/YOLO/VOC dataset, or for
      classifiers an image folder ``ROOT/<class>/<image>`` (a detection dataset trains a
      classifier on object crops); ``format``: "auto" or one of coco/yolo/voc/folder.
    - ``img``: input size (square), None = the zoo's default; ``width``: backbone width multiplier.
    - ``batch``: the GLOBAL batch (split over replicas); ``lr``: peak learning rate of the
      cosine schedule after ``warmup_epochs`` of linear warm-up; AdamW with ``weight_decay``.
    - ``val_fraction``/``seed``: the split ``edgekit eval --split val`` also uses.
    - ``out``: run folder (checkpoint/, best.keras, last.keras, history.csv, curves.png, logs/).
    - ``resume``: continue the run in ``out`` from its last checkpoint.
    - ``init``: initialise from a ``.keras``/``.weights.h5`` checkpoint (layers matched by name
      and shape); ``freeze``: "backbone" or N (the first N backbone blocks; block k = the number
      in the zoo's layer names, e.g. ``block_3_*``; the stem is block 0).
    - ``strategy``: auto (mirrored with >1 GPU, else default), mirrored, multiworker (TF_CONFIG),
      one; ``mixed_precision``: float16 compute on GPU (ignored with a warning on CPU).
    - ``steps_per_epoch``: cap the batches per epoch (None = the whole training split).
    - ``bn_momentum``: BatchNorm moving-average momentum; None = auto: the zoo's 0.99, lowered
      for short runs to ``1 - 20 / total_steps`` (at least 0.5) so the moving statistics that
      validation and export use catch up with the weights within the run.
    - ``sync_bn``: BatchNorm statistics over the global batch (all replicas) instead of each
      replica's share; matters when the per-replica batch is small.
    - ``eager``: run eagerly (no graph tracing): slower per step, but no 20-60 s trace up front;
      for tiny debugging runs and tests.
    - ``teacher``: an SSD teacher (``.keras`` with its spec, or a ``.tflite`` that ``edgekit
      import`` can translate) whose per-anchor class scores at ``temperature`` are soft
      targets next to the labels, weighted by ``distill_weight``
      (:mod:`edgekit.train.soft_targets`); SSD students only.
    """

    model: str
    data: Path
    format: str = "auto"
    epochs: int = 50
    batch: int = 16
    img: int | None = None
    lr: float = 1e-3
    width: float | None = None
    val_fraction: float = 0.2
    seed: int = 0
    out: Path = Path("runs/train")
    resume: bool = False
    init: Path | None = None
    freeze: str | None = None
    strategy: str = "auto"
    mixed_precision: bool = False
    warmup_epochs: float = 1.0
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    augment: bool = True
    mosaic: float = 0.0
    max_boxes: int = 100
    crop_context: float = 0.1
    steps_per_epoch: int | None = None
    tensorboard: bool = True
    progress: str = "auto"
    metric_max_images: int = 200
    bn_momentum: float | None = None
    sync_bn: bool = False
    eager: bool = False
    teacher: Path | None = None
    distill_weight: float = 1.0
    temperature: float = 2.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", Path(self.data))
        object.__setattr__(self, "out", Path(self.out))
        for name in ("init", "teacher"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch >= 1, f"batch must be >= 1, got {self.batch}"),
            (self.img is None or self.img >= 32, f"img must be >= 32, got {self.img}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.width is None or self.width > 0, f"width must be > 0, got {self.width}"),
            (
                0.0 <= self.val_fraction < 1.0,
                f"val_fraction must be in [0, 1), got {self.val_fraction}",
            ),
            (
                self.strategy in STRATEGIES,
                f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}",
            ),
            (
                self.progress in PROGRESS,
                f"progress must be one of {', '.join(PROGRESS)}, got {self.progress!r}",
            ),
            (self.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {self.warmup_epochs}"),
            (
                0.0 <= self.label_smoothing < 1.0,
                f"label_smoothing must be in [0, 1), got {self.label_smoothing}",
            ),
            (0.0 <= self.mosaic <= 1.0, f"mosaic must be in [0, 1], got {self.mosaic}"),
            (self.temperature > 0, f"temperature must be > 0, got {self.temperature}"),
            (self.distill_weight >= 0, f"distill_weight must be >= 0, got {self.distill_weight}"),
            (
                self.steps_per_epoch is None or self.steps_per_epoch >= 1,
                "steps_per_epoch must be >= 1",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        if self.freeze is not None:
            f = str(self.freeze)
            if f != "backbone" and not (f.isdigit() and int(f) >= 1):
                raise UsageError(
                    f"freeze must be 'backbone' or a number of blocks >= 1, got {self.freeze!r}"
                )
            object.__setattr__(self, "freeze", f)

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready values (paths as strings)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = str(v) if isinstance(v, Path) else v
        return out


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def load_yaml(path: Path | str) -> dict[str, Any]:
    """Read a training YAML (keys = TrainConfig fields; ``-`` or ``_`` both accepted)."""
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{where}: YAML syntax error") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of training options, got {type(data).__name__}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in _FIELDS:
            known = ", ".join(sorted(_FIELDS))
            raise ConfigError(f"{p}: unknown option {key!r}", hint=f"known: {known}")
        out[name] = value
    return out


def make_config(yaml_values: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
    """A TrainConfig from YAML values with ``overrides`` (e.g. CLI flags) on top."""
    values = dict(yaml_values or {})
    values.update({k: v for k, v in overrides.items() if k in _FIELDS})
    for required in ("model", "data"):
        if values.get(required) in (None, ""):
            raise UsageError(
                f"no {required} given (pass --{required} or set it in the YAML config)"
            )
    try:
        return TrainConfig(**values)
    except TypeError as exc:
        raise ConfigError(f"bad training option: {exc}") from None
