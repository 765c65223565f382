"""Learning-rate schedule: linear warm-up, then cosine decay to ``min_ratio * peak``."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

__all__ = ["WarmupCosine"]


@keras.saving.register_keras_serializable(package="edgekit")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """``lr(step)``: ``peak * (step + 1) / warmup_steps`` during warm-up, then
    ``peak * (min_ratio + (1 - min_ratio) * (1 + cos(pi * t)) / 2)`` with ``t`` going 0 -> 1
    over the remaining ``total_steps - warmup_steps``."""

    def __init__(
        self, peak: float, total_steps: int, warmup_steps: int = 0, min_ratio: float = 0.01
    ) -> None:
        self.peak = float(peak)
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = max(min(int(warmup_steps), self.total_steps - 1), 0)
        self.min_ratio = float(min_ratio)

    def __call__(self, step: Any) -> Any:
        step = ops.cast(step, "float32")
        warm = float(max(self.warmup_steps, 1))
        decay_steps = float(max(self.total_steps - self.warmup_steps, 1))
        t = ops.clip((step - self.warmup_steps) / decay_steps, 0.0, 1.0)
        cosine = self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + ops.cos(math.pi * t))
        warmup = (step + 1.0) / warm
        in_warmup = ops.cast(step < self.warmup_steps, "float32")
        return self.peak * (in_warmup * warmup + (1.0 - in_warmup) * cosine)

    def get_config(self) -> dict[str, Any]:
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "min_ratio": self.min_ratio,
        }
