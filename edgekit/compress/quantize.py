"""Quantization: post-training (through :mod:`edgekit.export`), quantization-aware training
(TFMOT on the tf-keras twin) and the float-vs-int8 error report.

- :func:`post_training` exports a Keras 3 model as ``int8`` (static, calibrated on real images:
  the export helper's representative dataset, or ``calib_dir``), ``dynamic`` or ``float16`` by
  calling :func:`edgekit.export.tflite.export_model`; no converter code lives here.
- :func:`qat` wraps the tf-keras twin with ``quantize_model``, fine-tunes it, and
  :func:`export_qat` converts that tf-keras model (``from_keras_model``) with the export format
  table's int8 settings, validates it and embeds the spec like any other export.
- :func:`quant_error` runs a float and a quantized ``.tflite`` on the same images and reports
  per-output error (and top-1 agreement for classifiers).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ExportError, UsageError

__all__ = ["QuantError", "export_qat", "post_training", "qat", "quant_error"]


def post_training(
    model: Any,
    spec: Any,
    out: str | os.PathLike[str],
    *,
    format: str = "int8",
    calib_dir: str | os.PathLike[str] | None = None,
    calib_samples: int = 100,
    io_dtype: str = "uint8",
    labels: Sequence[str] | None = None,
) -> Any:
    """Export ``model`` as ``format`` ("int8" | "dynamic" | "float16" | "float32"); returns the
    :class:`~edgekit.export.tflite.ExportResult`."""
    from edgekit.export.tflite import ExportConfig, export_model

    if format not in ("int8", "dynamic", "float16", "float32"):
        raise UsageError(
            f"post-training format must be int8, dynamic, float16 or float32, got {format!r}"
        )
    config = ExportConfig(
        format=format,
        out=out,
        io_dtype=io_dtype,
        calib_dir=calib_dir,
        calib_samples=calib_samples,
        labels=tuple(labels) if labels is not None else None,
    )
    return export_model(model, spec, config)


def qat(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    learning_rate: float = 1e-4,
    loss: str = "sparse_categorical_crossentropy",
    seed: int = 0,
) -> Any:
    """Quantization-aware fine-tuning of a Keras 3 model; returns the trained tf-keras QAT model
    (export it with :func:`export_qat`). Pruned zeros are kept (prune-preserving QAT) when the
    model is sparse."""
    import tensorflow as tf

    from edgekit.compress.prune import sparsity_report, tfmot, to_tf_keras

    mot = tfmot()
    import tf_keras

    tf.random.set_seed(seed)
    twin = to_tf_keras(model)
    if sparsity_report(model)["total"] > 0.2:
        annotated = mot.quantization.keras.quantize_annotate_model(twin)
        qmodel = mot.quantization.keras.quantize_apply(
            annotated, mot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
        )
    else:
        qmodel = mot.quantization.keras.quantize_model(twin)
    qmodel.compile(optimizer=tf_keras.optimizers.Adam(learning_rate), loss=loss)
    qmodel.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    return qmodel


def export_qat(
    qmodel: Any,
    spec: Any,
    out: str | os.PathLike[str],
    *,
    io_dtype: str = "uint8",
    calib_dir: str | os.PathLike[str] | None = None,
    calib_samples: int = 32,
    labels: Sequence[str] | None = None,
) -> Path:
    """Convert a tf-keras QAT model to a full-integer ``.tflite`` with ``spec`` embedded.

    Uses the export format table's "int8" converter settings and its validation, so the result
    is checked exactly like ``edgekit export --format int8``."""
    import tensorflow as tf

    from edgekit.core.flatbuffer import read_tflite
    from edgekit.export.formats import ExportOptions, get_format, validate
    from edgekit.export.metadata import finalize_spec, write_artifact
    from edgekit.export.representative import representative_samples

    fmt = get_format("int8")
    converter = tf.lite.TFLiteConverter.from_keras_model(qmodel)
    fmt.configure(converter, ExportOptions(io_dtype=io_dtype))

    def gen() -> Any:
        for s in representative_samples(spec, calib_samples, calib_dir=calib_dir):
            yield [s]

    converter.representative_dataset = gen
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            flatbuffer = converter.convert()
    except Exception as exc:  # the converter raises many unrelated types
        raise ExportError(
            f"QAT conversion failed: {str(exc).strip().splitlines()[-1][:500]}"
        ) from exc
    graph = read_tflite(flatbuffer)
    validate(graph, fmt, io_dtype=io_dtype)
    final = finalize_spec(spec, graph, labels=labels, export_format="int8-qat")
    return write_artifact(out, flatbuffer, final, labels if labels is not None else spec.labels)


@dataclass(frozen=True)
class QuantError:
    """Float vs quantized outputs on the same inputs, per output: max/mean abs error, the
    float output's range, cosine similarity; ``top1_agreement`` for classifiers."""

    outputs: list[dict[str, float]]
    top1_agreement: float | None
    images: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "outputs": self.outputs,
            "top1_agreement": self.top1_agreement,
            "images": self.images,
        }


def quant_error(
    float_path: str | os.PathLike[str],
    quant_path: str | os.PathLike[str],
    images: Sequence[np.ndarray],
) -> QuantError:
    """Run both models (edgekit runtime, each with its own preprocessing) on RGB ``images``."""
    from edgekit.runtime.model import Model

    if not images:
        raise UsageError("quant_error needs at least one image")
    fm, qm = Model.load(float_path, threads=1), Model.load(quant_path, threads=1)
    errs: list[list[np.ndarray]] = []
    refs: list[list[np.ndarray]] = []
    agree = []
    for img in images:
        f = fm.dequantize(fm.invoke(fm.preprocess(img)[0]))
        q = qm.dequantize(qm.invoke(qm.preprocess(img)[0]))
        if len(f) != len(q):
            raise UsageError(f"{float_path} and {quant_path} have different outputs")
        errs.append(
            [
                np.asarray(b, np.float32) - np.asarray(a, np.float32)
                for a, b in zip(f, q, strict=True)
            ]
        )
        refs.append([np.asarray(a, np.float32) for a in f])
        if fm.spec.task == "classify":
            agree.append(int(np.argmax(f[0]) == np.argmax(q[0])))
    outputs = []
    for k in range(len(refs[0])):
        e = np.stack([x[k].reshape(-1) for x in errs])
        r = np.stack([x[k].reshape(-1) for x in refs])
        q = r + e
        cos = float((r * q).sum() / (np.linalg.norm(r) * np.linalg.norm(q) + 1e-12))
        outputs.append(
            {
                "max_abs": float(np.abs(e).max()),
                "mean_abs": float(np.abs(e).mean()),
                "float_range": float(r.max() - r.min()),
                "cosine": cos,
            }
        )
    return QuantError(outputs, float(np.mean(agree)) if agree else None, len(images))
