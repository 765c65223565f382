"""Export: Keras model -> self-describing ``.tflite`` (float32, float16, dynamic, int8, Edge TPU).

- :mod:`~edgekit.export.formats`: the one table of formats (converter settings, validation);
- :mod:`~edgekit.export.tflite`: ``export_model(model, spec, ExportConfig(...))`` and
  ``load_source(name_or_checkpoint)``;
- :mod:`~edgekit.export.nms`: NMS inside the model with builtin ops;
- :mod:`~edgekit.export.representative`: calibration samples from real photos;
- :mod:`~edgekit.export.metadata`: spec + labels embedded, atomic writes;
- :mod:`~edgekit.export.edgetpu` (TF-free): Edge TPU op report and ``edgetpu_compiler`` wrapper.

Names are imported lazily so that ``import edgekit.export.edgetpu`` stays light; TensorFlow is
imported only when a conversion runs.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ExportConfig": "edgekit.export.tflite",
    "ExportResult": "edgekit.export.tflite",
    "export_model": "edgekit.export.tflite",
    "load_source": "edgekit.export.tflite",
    "FORMATS": "edgekit.export.formats",
    "get_format": "edgekit.export.formats",
    "NMSConfig": "edgekit.export.nms",
    "check_edgetpu": "edgekit.export.edgetpu",
    "compile_edgetpu": "edgekit.export.edgetpu",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgekit.export' has no attribute {name!r}")
