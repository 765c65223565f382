"""The one table of export formats: it drives conversion, validation, the CLI and bench.

Each :class:`ExportFormat` row says what file it makes (suffix), whether it needs a
representative dataset, which dtype its input/output get, how to configure the TFLite converter
(a function over the converter object, imported lazily so this module stays TF-free) and what the
written artifact must satisfy (:func:`validate`, reading the flatbuffer with the pure-Python
reader).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgekit.core.flatbuffer import QUANTIZED_DTYPES, TFLiteGraph
from edgekit.errors import ExportError, UsageError

# Ops that legitimately stay float in an otherwise integer model: post-processing that has
# no integer kernel (the "CPU tail") and the converter's (de)quantize boundary ops.
FLOAT_TAIL_OPS = frozenset(
    {
        "TFLite_Detection_PostProcess",
        "NON_MAX_SUPPRESSION_V4",
        "NON_MAX_SUPPRESSION_V5",
        "DEQUANTIZE",
        "QUANTIZE",
        "CAST",
    }
)


@dataclass(frozen=True)
class ExportFormat:
    """One row of the format table."""

    name: str
    suffix: str
    description: str
    needs_calibration: bool
    io_dtype: str  # dtype of the model input ("float32" | "int8" | "uint8" chosen at export)
    configure: Callable[[Any, ExportOptions], None]
    quantized: bool  # activations are integer (full-integer model)
    weights: str  # "float32" | "float16" | "int8"
    compile_edgetpu: bool = False


@dataclass(frozen=True)
class ExportOptions:
    """Per-export choices the converter settings depend on."""

    io_dtype: str = "uint8"  # for full-integer formats: "uint8" or "int8"
    has_float_tail: bool = False  # in-model NMS/post-processing that stays float
    quantize_outputs: bool = True  # integer outputs (off when the tail emits float results)


def _float32(converter: Any, opts: ExportOptions) -> None:
    converter.allow_custom_ops = True


def _float16(converter: Any, opts: ExportOptions) -> None:
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    converter.allow_custom_ops = True


def _dynamic(converter: Any, opts: ExportOptions) -> None:
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.allow_custom_ops = True


def _full_int8(converter: Any, opts: ExportOptions) -> None:
    import tensorflow as tf

    dtype = {"uint8": tf.uint8, "int8": tf.int8}[opts.io_dtype]
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if opts.has_float_tail:  # NMS/post-processing has float kernels only
        ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)
    converter.target_spec.supported_ops = ops
    converter.inference_input_type = dtype
    if opts.quantize_outputs:
        converter.inference_output_type = dtype
    converter.allow_custom_ops = True


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("float32", ".tflite", "float32 weights and activations", False, "float32", _float32, False, "float32"),
        ExportFormat("float16", "_fp16.tflite", "float16 weights, float32 compute", False, "float32", _float16, False, "float16"),
        ExportFormat("dynamic", "_dynamic.tflite", "int8 weights, float activations (dynamic range)", False, "float32", _dynamic, False, "int8"),
        ExportFormat("int8", "_int8.tflite", "full integer: int8 weights and activations, uint8/int8 I/O", True, "uint8", _full_int8, True, "int8"),
        ExportFormat("edgetpu", "_int8_edgetpu.tflite", "full integer, then compiled by edgetpu_compiler", True, "uint8", _full_int8, True, "int8", True),
    )
}  # fmt: skip


def get_format(name: str) -> ExportFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise UsageError(
            f"unknown export format {name!r}; choose one of {', '.join(FORMATS)}"
        ) from None


def unquantized_ops(graph: TFLiteGraph) -> list[tuple[int, str, str]]:
    """Ops of the main graph computing on float tensors, outside the post-processing tail.

    Returns ``(index, op, reason)``. ``QUANTIZE``/``DEQUANTIZE``/``CAST`` are the integer
    model's boundary ops; the post-processing tail (NMS, detection post-processing, decode
    ops no convolution depends on: ``edgetpu.post_processing_ops``) may stay float.
    """
    from edgekit.export.edgetpu import post_processing_ops

    g = graph.main
    tail = post_processing_ops(g)
    out = []
    for op in g.operators:
        if op.index in tail or op.op in FLOAT_TAIL_OPS:
            continue
        tensors = [g.tensors[i] for i in (*op.inputs, *op.outputs) if i >= 0]
        floats = [t for t in tensors if t.dtype in ("float32", "float16", "float64")]
        if floats:
            out.append((op.index, op.op, f"float tensor {floats[0].name!r}"))
    return out


def validate(graph: TFLiteGraph, fmt: ExportFormat, *, io_dtype: str | None = None) -> None:
    """Check a converted model satisfies its format; raises :class:`ExportError` if not."""
    if graph.contains_flex_ops:
        raise ExportError(
            f"{fmt.name} export contains Flex (TF) ops, which device runtimes cannot run"
        )
    inputs = graph.inputs
    if not inputs:
        raise ExportError(f"{fmt.name} export has no inputs")
    want = io_dtype or fmt.io_dtype
    if inputs[0].dtype != want:
        raise ExportError(f"{fmt.name} export has a {inputs[0].dtype} input, expected {want}")
    if fmt.quantized:
        bad = unquantized_ops(graph)
        if bad:
            index, op, reason = bad[0]
            raise ExportError(
                f"{fmt.name} export is not fully quantized: {len(bad)} op(s) on float, "
                f"first #{index} {op} ({reason})"
            )
        if inputs[0].dtype in QUANTIZED_DTYPES and inputs[0].quantization is None:
            raise ExportError(f"{fmt.name} export input has no quantization parameters")
    elif fmt.name == "float32":
        quantized = [
            t for t in graph.main.tensors if t.dtype in ("int8", "uint8") and t.quantization
        ]
        if quantized:
            raise ExportError(
                f"float32 export unexpectedly holds quantized tensor {quantized[0].name!r}"
            )
