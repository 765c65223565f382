"""A compress recipe: its stages (``"distill,prune:0.5,qat,int8"`` or a YAML file) and every
option of ``edgekit compress`` (:class:`CompressConfig`), and what one stage produced
(:class:`StageResult`). See :mod:`edgekit.compress.recipes` for what each stage does.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import ConfigError, UsageError

__all__ = [
    "ALL_STAGES",
    "EXPORT_STAGES",
    "TRAIN_STAGES",
    "CompressConfig",
    "Stage",
    "StageResult",
    "is_checkpoint",
    "load_recipe",
    "parse_recipe",
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
    temperature: float | None = None  # None: 4 for classifiers (softmax), 1 for detectors
    val_fraction: float = 0.2
    seed: int = 0
    calib_samples: int = 64
    bench_runs: int = 50
    threads: int = 1
    flip: bool = True
    cache_dir: Path | None = None
    # detection and pose students (edgekit.compress.recipes.detect)
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
    teacher_boxes: bool = True  # detectors: add the teacher's boxes where humans labelled none

    def soft_temperature(self, detector: bool) -> float:
        """The distillation temperature: ``temperature``, else 4 for a classifier's softmax
        and 1 for a detector's per-class sigmoids (T > 1 pulls every background anchor's soft
        target towards 0.5: at T = 2 two thirds of an SSD teacher's anchors get targets > 0.1)."""
        if self.temperature is not None:
            return self.temperature
        return 1.0 if detector else 4.0

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


def is_checkpoint(student: str) -> bool:
    """True when ``student`` names a ``.keras`` checkpoint (or any file), not a zoo model."""
    return student.endswith(".keras") or Path(student).is_file()
