"""Keras 3 model -> self-describing ``.tflite`` (float32, float16, dynamic, int8, Edge TPU).

Conversion goes through a ``keras.export.ExportArchive`` with a fixed ``[1, H, W, C]``
signature (optionally with NMS appended), then ``TFLiteConverter.from_saved_model``: with a
fixed batch the converter folds the shape arithmetic Keras emits for ``Reshape`` (``from_keras_model``
leaves SHAPE/STRIDED_SLICE/PACK ops that the Edge TPU cannot map). Never
``from_concrete_functions`` (with Keras 3 its int8 models fail at run time because the
weights stay variables). Full-integer formats are calibrated on real photos
(:mod:`edgekit.export.representative`). The result is validated against its row of the format
table, gets the model's spec and labels embedded, and is written atomically.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.flatbuffer import read_tflite
from edgekit.core.types import ModelSpec
from edgekit.errors import DependencyMissing, ExportError, ModelLoadError, UsageError
from edgekit.export.edgetpu import INSTALL_HINT, CompileResult, check_edgetpu, compile_edgetpu
from edgekit.export.formats import ExportFormat, ExportOptions, get_format, validate
from edgekit.export.metadata import finalize_spec, order_outputs_by_signature, write_artifact
from edgekit.export.nms import NMSConfig, nms_serving_fn, ssd_output_positions
from edgekit.export.representative import representative_samples

Progress = Callable[[int, int], None]  # (samples done, total)

# Decoders whose in-graph decode tail is kept float in full-integer exports (besides any NMS).
FLOAT_TAIL_DECODERS = frozenset({"movenet"})


@dataclass(frozen=True)
class ExportConfig:
    """Everything one export needs besides the model and its spec."""

    format: str = "int8"
    out: str | os.PathLike[str] | None = None
    io_dtype: str = "uint8"  # full-integer formats: "uint8" or "int8"
    nms: bool = False
    nms_config: NMSConfig = field(default_factory=NMSConfig)
    calib_dir: str | os.PathLike[str] | None = None
    calib_samples: int = 100
    labels: tuple[str, ...] | None = None
    seed: int = 0
    compiler: str = "edgetpu_compiler"

    def __post_init__(self) -> None:
        get_format(self.format)
        if self.io_dtype not in ("uint8", "int8"):
            raise UsageError(f"io_dtype must be 'uint8' or 'int8', got {self.io_dtype!r}")
        if self.calib_samples < 1:
            raise UsageError(f"calib_samples must be >= 1, got {self.calib_samples}")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    size_bytes: int
    spec: ModelSpec
    edgetpu_report: dict[str, Any]
    seconds: float
    compiled: CompileResult | None = None


def _require_tf() -> Any:
    try:
        import tensorflow as tf
    except ImportError:
        raise DependencyMissing(
            "export needs TensorFlow", hint="pip install 'edgekit[train]'"
        ) from None
    return tf


def _representative(
    spec: ModelSpec, config: ExportConfig, progress: Progress | None
) -> Callable[[], Iterator]:
    def gen() -> Iterator[list[np.ndarray]]:
        samples = representative_samples(
            spec, config.calib_samples, calib_dir=config.calib_dir, seed=config.seed
        )
        for i, sample in enumerate(samples, 1):
            yield [sample]
            if progress is not None:
                progress(i, config.calib_samples)

    return gen


def _saved_model_with(model: Any, serve: Callable, spec: ModelSpec, folder: str) -> None:
    import keras
    import tensorflow as tf

    h, w = spec.input_size
    channels = int(model.inputs[0].shape[-1])
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve",
        serve,
        input_signature=[tf.TensorSpec([1, h, w, channels], tf.float32, name="images")],
    )
    archive.write_out(folder, verbose=False)


def convert(
    model: Any,
    spec: ModelSpec,
    config: ExportConfig,
    *,
    progress: Progress | None = None,
) -> tuple[bytes, ModelSpec]:
    """Convert ``model`` to TFLite bytes (no metadata yet) and the spec of the result."""
    tf = _require_tf()
    fmt = get_format(config.format)
    if tuple(int(v) for v in model.inputs[0].shape[1:3]) != tuple(spec.input_size):
        raise ExportError(
            f"model input {tuple(model.inputs[0].shape)} does not match spec input_size {spec.input_size}"
        )
    out_spec = spec
    with tempfile.TemporaryDirectory(prefix="edgekit-export-") as tmp:
        if config.nms:
            serve, out_spec = nms_serving_fn(model, spec, config.nms_config)
        else:

            def serve(images):  # a fixed [1, H, W, C] signature: no dynamic-batch SHAPE ops
                return model(images, training=False)

        _saved_model_with(model, serve, spec, tmp)
        float_tail = fmt.quantized and (config.nms or spec.decoder in FLOAT_TAIL_DECODERS)
        opts = ExportOptions(
            io_dtype=config.io_dtype, has_float_tail=float_tail, quantize_outputs=not float_tail
        )
        rep = _representative(spec, config, progress) if fmt.needs_calibration else None
        if float_tail:
            flatbuffer = _quantize_keeping_tail_float(tmp, fmt, opts, rep)
        else:
            converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
            fmt.configure(converter, opts)
            if rep is not None:
                converter.representative_dataset = rep
            flatbuffer = _run(converter, fmt.name)
    # The converter may list outputs in any order; restore the Keras / serving-function order.
    flatbuffer = order_outputs_by_signature(flatbuffer)
    if out_spec.decoder == "ssd_raw":
        boxes, scores = ssd_output_positions(model, spec)
        params = {
            **out_spec.decoder_params,
            "outputs": {"box_encodings": boxes, "class_scores": scores},
        }
        out_spec = dataclasses.replace(out_spec, decoder_params=params)
    return flatbuffer, out_spec


def _run(converter: Any, what: str) -> bytes:
    try:
        return converter.convert()
    except Exception as exc:  # the converter raises many unrelated types
        last = str(exc).strip().splitlines()[-1:] or [type(exc).__name__]
        raise ExportError(f"TFLite conversion to {what} failed: {last[0][:500]}") from exc


def _quantize_keeping_tail_float(
    saved_model: str, fmt: ExportFormat, opts: ExportOptions, rep: Any
) -> bytes:
    """Full-integer model whose post-processing tail (decode arithmetic, NMS) stays float.

    The converter quantizes every op that has an integer kernel, including a decode tail of
    argmax / one-hot / sums / divisions whose int8 rounding wrecks keypoint coordinates and
    box offsets. The tail runs on the CPU anyway (never on the Edge TPU), so: convert to float
    once to find the tail (``edgetpu.post_processing_ops``), calibrate, then quantize with the
    tail's ops on the deny list (what ``tf.lite.experimental.QuantizationDebugger`` does).
    Integer input, float outputs.
    """
    import tensorflow as tf
    from tensorflow.lite.python import convert as tfl_convert
    from tensorflow.lite.python.util import modify_model_io_type

    from edgekit.export.edgetpu import post_processing_ops

    float_converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    float_converter.allow_custom_ops = True
    g = read_tflite(_run(float_converter, "float32 (to find the post-processing tail)")).main
    tail = post_processing_ops(g)
    names = sorted({g.tensors[t].name for i in tail for t in g.operators[i].outputs if t >= 0})
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    fmt.configure(converter, opts)
    converter.representative_dataset = rep
    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True
    calibrated = _run(converter, f"{fmt.name} (calibration)")
    try:
        quantized = tfl_convert.mlir_quantize(calibrated, denylisted_nodes=names)
        # as the converter does for integer I/O: drop the input QUANTIZE, keep float outputs
        return modify_model_io_type(
            quantized, {"uint8": tf.uint8, "int8": tf.int8}[opts.io_dtype], tf.float32
        )
    except Exception as exc:
        raise ExportError(
            f"quantizing {fmt.name} with a float post-processing tail failed: {exc}"
        ) from exc


def default_output(name: str, fmt: ExportFormat, nms: bool = False) -> Path:
    stem = Path(name).stem if name.endswith(".keras") else name
    return Path(f"{stem}{'_nms' if nms else ''}{fmt.suffix}")


def export_model(
    model: Any,
    spec: ModelSpec,
    config: ExportConfig,
    *,
    progress: Progress | None = None,
) -> ExportResult:
    """Convert, validate, embed spec + labels, (compile for the Edge TPU), write atomically."""
    start = time.perf_counter()
    fmt = get_format(config.format)
    out = (
        Path(config.out)
        if config.out is not None
        else default_output(spec.name or model.name, fmt, config.nms)
    )
    if fmt.compile_edgetpu and shutil.which(config.compiler) is None:
        raise DependencyMissing(f"{config.compiler} not found on PATH", hint=INSTALL_HINT)
    flatbuffer, out_spec = convert(model, spec, config, progress=progress)
    graph = read_tflite(flatbuffer)
    io_dtype = config.io_dtype if fmt.quantized else "float32"
    validate(graph, fmt, io_dtype=io_dtype)
    report = check_edgetpu(graph)
    labels = config.labels if config.labels is not None else spec.labels
    compiled = None
    if fmt.compile_edgetpu:
        with tempfile.TemporaryDirectory(prefix="edgekit-edgetpu-") as tmp:
            src = Path(tmp) / f"{out.stem.removesuffix('_edgetpu')}.tflite"
            src.write_bytes(flatbuffer)
            compiled = compile_edgetpu(src, tmp, compiler=config.compiler)
            flatbuffer = compiled.path.read_bytes()
            compiled = dataclasses.replace(compiled, path=out)
        graph = read_tflite(flatbuffer)
    final_spec = finalize_spec(out_spec, graph, labels=labels, export_format=fmt.name)
    path = write_artifact(out, flatbuffer, final_spec, labels)
    return ExportResult(
        path=path,
        format=fmt.name,
        size_bytes=path.stat().st_size,
        spec=final_spec,
        edgetpu_report=check_edgetpu(graph) if compiled else report,
        seconds=time.perf_counter() - start,
        compiled=compiled,
    )


def load_source(
    source: str,
    *,
    input_size: int | tuple[int, int] | None = None,
    num_classes: int | None = None,
    width: float | None = None,
    spec: ModelSpec | None = None,
) -> tuple[Any, ModelSpec]:
    """A Keras model and its spec from a registry name (untrained weights) or a ``.keras`` file.

    A ``.keras`` checkpoint needs its spec: ``spec``, or the one rule of
    :func:`edgekit.zoo.checkpoint.checkpoint_model_spec` (a ``<file>.spec.json`` next to it,
    what edgekit training writes, else the zoo entry its model's name starts with).
    """
    path = Path(source)
    if source.endswith(".keras") or path.is_file():
        return _load_checkpoint(path, spec=spec)
    from edgekit.zoo import registry

    entry = registry.get_entry(source)  # UsageError listing the known names
    model = entry.create(num_classes, input_size, width)
    return model, spec or entry.spec(model)


def _load_checkpoint(path: Path, *, spec: ModelSpec | None) -> tuple[Any, ModelSpec]:
    """The checkpoint's model and spec by the one rule of :mod:`edgekit.zoo.checkpoint` (its
    failures to load are export errors here)."""
    if not path.is_file():
        raise UsageError(f"{path}: no such model file")
    from edgekit.zoo.checkpoint import checkpoint_model_spec, load_checkpoint_model

    try:
        model = load_checkpoint_model(path)
        return model, spec or checkpoint_model_spec(path, model)
    except ModelLoadError as exc:
        raise ExportError(exc.args[0], hint=exc.hint) from exc
