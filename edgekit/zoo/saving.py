"""Loading saved zoo models: one place that registers the zoo's custom layers first."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_keras_model(path: str | Path) -> Any:
    """Load a ``.keras`` checkpoint (uncompiled) with the zoo's custom layers registered.

    Raises whatever ``keras.saving.load_model`` raises; callers turn it into their own error.
    """
    import keras

    from edgekit.zoo import layers, pose, tflite_graph, yolo  # noqa: F401  (custom layers)

    return keras.saving.load_model(str(path), compile=False)
