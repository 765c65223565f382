"""A Keras model run by the runtime's :class:`~edgekit.runtime.model.Model`: the same
preprocessing, decoding and mapping to the frame as its ``.tflite`` export gets.

:class:`KerasInterpreter` is a Keras model behind the small part of the TFLite interpreter API
that ``Model`` uses (float32 input and outputs, no quantization). TensorFlow is imported by the
model itself, not here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.types import ModelSpec
from edgekit.errors import ModelLoadError

__all__ = ["KerasInterpreter", "runtime_model"]


class KerasInterpreter:
    """A Keras model behind the small part of the TFLite interpreter API that ``Model`` uses
    (float32 input and outputs, no quantization)."""

    def __init__(self, keras_model: Any) -> None:
        self.keras_model = keras_model
        shape = tuple(keras_model.input_shape)
        if len(shape) != 4 or shape[1] is None or shape[2] is None:
            raise ModelLoadError(
                f"{keras_model.name}: input {shape} is not a fixed-size image [N,H,W,C]"
            )
        self._input = {
            "index": 0,
            "name": "input",
            "shape": np.array([1, shape[1], shape[2], shape[3]], np.int32),
            "dtype": np.float32,
            "quantization": (0.0, 0),
        }
        self._outputs = [
            {
                "index": i + 1,
                "name": str(getattr(o, "name", f"output_{i}")),
                "shape": np.array([1, *[int(d) for d in tuple(o.shape)[1:]]], np.int32),
                "dtype": np.float32,
                "quantization": (0.0, 0),
            }
            for i, o in enumerate(keras_model.outputs)
        ]
        self._x: np.ndarray | None = None
        self._values: list[np.ndarray] = []

    def get_input_details(self) -> list[dict]:
        return [self._input]

    def get_output_details(self) -> list[dict]:
        return self._outputs

    def set_tensor(self, index: int, value: np.ndarray) -> None:
        self._x = np.asarray(value, np.float32)

    def invoke(self) -> None:
        out = self.keras_model(self._x, training=False)
        out = out if isinstance(out, (list, tuple)) else [out]
        self._values = [np.asarray(_to_numpy(o), np.float32) for o in out]

    def get_tensor(self, index: int) -> np.ndarray:
        return self._values[index - 1]


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    import keras

    return keras.ops.convert_to_numpy(value)


def runtime_model(keras_model: Any, spec: ModelSpec, *, path: Path | None = None) -> Any:
    """A runtime ``Model`` over ``keras_model`` decoded with ``spec``."""
    from edgekit.runtime.interpreter import BackendInfo
    from edgekit.runtime.model import Model

    return Model(KerasInterpreter(keras_model), spec, backend=BackendInfo("keras", 1), path=path)
