"""Distribution strategy and mixed precision for training (tf.distribute under Keras 3).

``auto``: MirroredStrategy over all GPUs when there are two or more, else the default strategy.
``mirrored``: MirroredStrategy over the visible GPUs, or over the logical CPUs when there is no
GPU (what the tests use with two logical CPU devices). ``multiworker``: needs ``TF_CONFIG``.
``one``: OneDeviceStrategy on the first GPU, else the CPU.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from edgekit.errors import UsageError

__all__ = ["make_strategy", "set_mixed_precision", "worker_index"]

log = logging.getLogger(__name__)


def make_strategy(name: str = "auto") -> Any:
    """The ``tf.distribute.Strategy`` called ``name`` (module docstring)."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus)
    if name == "multiworker":
        raw = os.environ.get("TF_CONFIG")
        if not raw:
            raise UsageError(
                "--strategy multiworker needs TF_CONFIG (cluster and task) in the environment"
            )
        try:
            json.loads(raw)
        except ValueError:
            raise UsageError("TF_CONFIG is not valid JSON") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "one":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    raise UsageError(f"unknown strategy {name!r}; expected auto, mirrored, multiworker or one")


def set_mixed_precision(enabled: bool) -> bool:
    """Use the ``mixed_float16`` policy when asked and a GPU exists; on CPU warn and keep float32.
    Returns whether mixed precision is on."""
    import keras
    import tensorflow as tf

    if not enabled:
        keras.mixed_precision.set_global_policy("float32")
        return False
    if not tf.config.list_logical_devices("GPU"):
        log.warning("--mixed-precision ignored: no GPU (float16 compute is slower on CPU)")
        keras.mixed_precision.set_global_policy("float32")
        return False
    keras.mixed_precision.set_global_policy("mixed_float16")
    return True


def worker_index(strategy: Any) -> int:
    """This worker's index in a multi-worker cluster (0 = the chief, which writes the run's
    files; the others write theirs under ``out/worker<i>``, as Keras advises), else 0."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "cluster_spec", None):
        return 0
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    if task_type == "chief":
        return 0
    has_chief = "chief" in (resolver.cluster_spec().as_dict() or {})
    return task_id + 1 if has_chief else task_id
