"""edgekit.runtime: load a .tflite model and run it on frames (no TensorFlow needed).

``Model.load(path)`` picks an interpreter backend (ai_edge_litert, then tflite_runtime, then
tensorflow.lite), reads or infers the model's spec, and offers ``predict(image_rgb)``;
``make_step(model)`` turns it into the per-frame function the real-time loop runs.
Names are imported lazily so ``import edgekit.runtime`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Model": "edgekit.runtime.model",
    "Prediction": "edgekit.runtime.model",
    "BackendInfo": "edgekit.runtime.interpreter",
    "make_interpreter": "edgekit.runtime.interpreter",
    "make_step": "edgekit.runtime.step",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgekit.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
