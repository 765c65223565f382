"""A pure-Python reader of ``.tflite`` flatbuffers (no TensorFlow, no LiteRT needed).

Reads what edgekit needs to inspect a model: operator codes, subgraphs (tensors with shape,
dtype and quantization; operators with their input/output tensors, a few builtin options and
a custom op's raw option bytes), buffer sizes and metadata names. Every read is bounds-checked:
malformed or truncated input raises ``ValueError``, never ``IndexError``/``struct.error`` or a
crash. Bytes appended after the flatbuffer (edgekit's spec ZIP, the TF1 models' label map) are
ignored.

The field numbers follow ``tensorflow/compiler/mlir/lite/schema/schema.fbs``; the enum tables
below are copied from it by hand (a test checks them against the generated schema module).
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILE_IDENTIFIER = b"TFL3"
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"
FLEX_PREFIX = "Flex"

# schema.fbs `enum BuiltinOperator`, in value order (index == value), 0..161.
BUILTIN_OPERATORS: tuple[str, ...] = (
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D",
    "DEPTH_TO_SPACE", "DEQUANTIZE", "EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED",
    "HASHTABLE_LOOKUP", "L2_NORMALIZATION", "L2_POOL_2D", "LOCAL_RESPONSE_NORMALIZATION",
    "LOGISTIC", "LSH_PROJECTION", "LSTM", "MAX_POOL_2D", "MUL", "RELU",
    "RELU_N1_TO_1", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RNN",
    "SOFTMAX", "SPACE_TO_DEPTH", "SVDF", "TANH", "CONCAT_EMBEDDINGS",
    "SKIP_GRAM", "CALL", "CUSTOM", "EMBEDDING_LOOKUP_SPARSE", "PAD",
    "UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "TRANSPOSE",
    "MEAN", "SUB", "DIV", "SQUEEZE", "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "STRIDED_SLICE", "BIDIRECTIONAL_SEQUENCE_RNN", "EXP", "TOPK_V2", "SPLIT",
    "LOG_SOFTMAX", "DELEGATE", "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST", "PRELU",
    "MAXIMUM", "ARG_MAX", "MINIMUM", "LESS", "NEG",
    "PADV2", "GREATER", "GREATER_EQUAL", "LESS_EQUAL", "SELECT",
    "SLICE", "SIN", "TRANSPOSE_CONV", "SPARSE_TO_DENSE", "TILE",
    "EXPAND_DIMS", "EQUAL", "NOT_EQUAL", "LOG", "SUM",
    "SQRT", "RSQRT", "SHAPE", "POW", "ARG_MIN",
    "FAKE_QUANT", "REDUCE_PROD", "REDUCE_MAX", "PACK", "LOGICAL_OR",
    "ONE_HOT", "LOGICAL_AND", "LOGICAL_NOT", "UNPACK", "REDUCE_MIN",
    "FLOOR_DIV", "REDUCE_ANY", "SQUARE", "ZEROS_LIKE", "FILL",
    "FLOOR_MOD", "RANGE", "RESIZE_NEAREST_NEIGHBOR", "LEAKY_RELU", "SQUARED_DIFFERENCE",
    "MIRROR_PAD", "ABS", "SPLIT_V", "UNIQUE", "CEIL",
    "REVERSE_V2", "ADD_N", "GATHER_ND", "COS", "WHERE",
    "RANK", "ELU", "REVERSE_SEQUENCE", "MATRIX_DIAG", "QUANTIZE",
    "MATRIX_SET_DIAG", "ROUND", "HARD_SWISH", "IF", "WHILE",
    "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5", "SCATTER_ND", "SELECT_V2", "DENSIFY",
    "SEGMENT_SUM", "BATCH_MATMUL", "PLACEHOLDER_FOR_GREATER_OP_CODES", "CUMSUM", "CALL_ONCE",
    "BROADCAST_TO", "RFFT2D", "CONV_3D", "IMAG", "REAL",
    "COMPLEX_ABS", "HASHTABLE", "HASHTABLE_FIND", "HASHTABLE_IMPORT", "HASHTABLE_SIZE",
    "REDUCE_ALL", "CONV_3D_TRANSPOSE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE",
    "BROADCAST_ARGS", "RANDOM_STANDARD_NORMAL", "BUCKETIZE", "RANDOM_UNIFORM", "MULTINOMIAL",
    "GELU", "DYNAMIC_UPDATE_SLICE", "RELU_0_TO_1", "UNSORTED_SEGMENT_PROD", "UNSORTED_SEGMENT_MAX",
    "UNSORTED_SEGMENT_SUM", "ATAN2", "UNSORTED_SEGMENT_MIN", "SIGN", "BITCAST",
    "BITWISE_XOR", "RIGHT_SHIFT",
)  # fmt: skip

# schema.fbs `enum TensorType`, index == value, lower-case numpy-style names.
TENSOR_TYPES: tuple[str, ...] = (
    "float32", "float16", "int32", "uint8", "int64", "string", "bool", "int16",
    "complex64", "int8", "float64", "complex128", "uint64", "resource", "variant",
    "uint32", "uint16", "int4", "bfloat16", "int2", "uint4", "float8_e4m3fn", "float8_e5m2",
)  # fmt: skip

_NUMPY_DTYPES = {
    "float32": "<f4", "float16": "<f2", "int32": "<i4", "uint8": "u1", "int64": "<i8",
    "int16": "<i2", "int8": "i1", "float64": "<f8", "bool": "?", "uint32": "<u4",
}  # fmt: skip

QUANTIZED_DTYPES = frozenset({"int8", "uint8", "int16", "int4"})

# BuiltinOptions union members whose fields we decode (type value -> (name, fields)).
_PADDING = ("SAME", "VALID")
_ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT")
_OPTION_LAYOUTS: dict[int, tuple[str, tuple[tuple[str, str, int], ...]]] = {
    # field name, struct format of the scalar, default
    1: (
        "Conv2DOptions",
        (("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0),
         ("fused_activation", "b", 0), ("dilation_w", "i", 1), ("dilation_h", "i", 1)),
    ),
    2: (
        "DepthwiseConv2DOptions",
        (("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0),
         ("depth_multiplier", "i", 0), ("fused_activation", "b", 0),
         ("dilation_w", "i", 1), ("dilation_h", "i", 1)),
    ),
    5: (
        "Pool2DOptions",
        (("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0),
         ("filter_w", "i", 0), ("filter_h", "i", 0), ("fused_activation", "b", 0)),
    ),
    10: ("ConcatenationOptions", (("axis", "i", 0), ("fused_activation", "b", 0))),
    11: ("AddOptions", (("fused_activation", "b", 0),)),
    21: ("MulOptions", (("fused_activation", "b", 0),)),
    28: ("SubOptions", (("fused_activation", "b", 0),)),
    32: (
        "StridedSliceOptions",
        (("begin_mask", "i", 0), ("end_mask", "i", 0), ("ellipsis_mask", "i", 0),
         ("new_axis_mask", "i", 0), ("shrink_axis_mask", "i", 0)),
    ),
    59: ("PackOptions", (("values_count", "i", 0), ("axis", "i", 0))),
    8: (
        "FullyConnectedOptions",
        (("fused_activation", "b", 0), ("weights_format", "b", 0), ("keep_num_dims", "?", False)),
    ),
    9: ("SoftmaxOptions", (("beta", "f", 0.0),)),
    15: (
        "ResizeBilinearOptions",
        (("new_height", "i", 0), ("new_width", "i", 0), ("align_corners", "?", False),
         ("half_pixel_centers", "?", False)),
    ),
    27: ("ReducerOptions", (("keep_dims", "?", False),)),
    74: (
        "ResizeNearestNeighborOptions",
        (("align_corners", "?", False), ("half_pixel_centers", "?", False)),
    ),
}  # fmt: skip


def builtin_name(code: int) -> str:
    """Name of a BuiltinOperator value (``BUILTIN_<n>`` for values newer than this table)."""
    if 0 <= code < len(BUILTIN_OPERATORS):
        return BUILTIN_OPERATORS[code]
    return f"BUILTIN_{code}"


def tensor_type_name(code: int) -> str:
    if 0 <= code < len(TENSOR_TYPES):
        return TENSOR_TYPES[code]
    return f"type_{code}"


# --------------------------------------------------------------------------- raw flatbuffer


class _Buf:
    """Bounds-checked little-endian reads of flatbuffer primitives over ``bytes``."""

    __slots__ = ("data", "size")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def _need(self, pos: int, n: int) -> None:
        if pos < 0 or n < 0 or pos + n > self.size:
            raise ValueError(
                f"flatbuffer read of {n} bytes at offset {pos} is out of bounds (size {self.size})"
            )

    def scalar(self, fmt: str, pos: int) -> Any:
        n = struct.calcsize("<" + fmt)
        self._need(pos, n)
        return struct.unpack_from("<" + fmt, self.data, pos)[0]

    def u32(self, pos: int) -> int:
        return self.scalar("I", pos)

    def deref(self, pos: int) -> int:
        """Follow a uoffset stored at ``pos``."""
        target = pos + self.u32(pos)
        if target >= self.size:
            raise ValueError(f"flatbuffer offset at {pos} points past the end ({target})")
        return target

    def table(self, pos: int) -> _Table:
        vtable = pos - self.scalar("i", pos)
        vsize = self.scalar("H", vtable)
        tsize = self.scalar("H", vtable + 2)
        if vsize < 4 or vsize % 2:
            raise ValueError(f"flatbuffer vtable at {vtable} has a bad size {vsize}")
        self._need(vtable, vsize)
        self._need(pos, tsize)
        return _Table(self, pos, vtable, vsize, tsize)


class _Table:
    __slots__ = ("buf", "pos", "tsize", "vsize", "vtable")

    def __init__(self, buf: _Buf, pos: int, vtable: int, vsize: int, tsize: int) -> None:
        self.buf, self.pos, self.vtable, self.vsize, self.tsize = buf, pos, vtable, vsize, tsize

    def _field(self, index: int) -> int:
        """Offset of field ``index`` inside the table, 0 when absent."""
        slot = 4 + 2 * index
        if slot >= self.vsize:
            return 0
        off = self.buf.scalar("H", self.vtable + slot)
        if off and off >= self.tsize:
            raise ValueError(
                f"flatbuffer field {index} of table at {self.pos} lies outside the table"
            )
        return off

    def scalar(self, index: int, fmt: str, default: Any = 0) -> Any:
        off = self._field(index)
        return self.buf.scalar(fmt, self.pos + off) if off else default

    def has(self, index: int) -> bool:
        return bool(self._field(index))

    def table(self, index: int) -> _Table | None:
        off = self._field(index)
        return self.buf.table(self.buf.deref(self.pos + off)) if off else None

    def _vector(self, index: int, elem_size: int) -> tuple[int, int] | None:
        off = self._field(index)
        if not off:
            return None
        start = self.buf.deref(self.pos + off)
        length = self.buf.u32(start)
        self.buf._need(start + 4, length * elem_size)
        return start + 4, length

    def vector_len(self, index: int, elem_size: int = 1) -> int:
        vec = self._vector(index, elem_size)
        return vec[1] if vec else 0

    def scalars(self, index: int, fmt: str) -> tuple[Any, ...]:
        size = struct.calcsize("<" + fmt)
        vec = self._vector(index, size)
        if not vec:
            return ()
        start, length = vec
        return struct.unpack_from(f"<{length}{fmt}", self.buf.data, start)

    def tables(self, index: int) -> list[_Table]:
        vec = self._vector(index, 4)
        if not vec:
            return []
        start, length = vec
        return [self.buf.table(self.buf.deref(start + 4 * i)) for i in range(length)]

    def string(self, index: int, default: str = "") -> str:
        off = self._field(index)
        if not off:
            return default
        start = self.buf.deref(self.pos + off)
        length = self.buf.u32(start)
        self.buf._need(start + 4, length)
        return self.buf.data[start + 4 : start + 4 + length].decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- result types


@dataclass(frozen=True)
class Quantization:
    """Per-tensor (one value) or per-axis quantization parameters."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    quantized_dimension: int = 0


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    buffer: int
    quantization: Quantization | None
    shape_signature: tuple[int, ...] = ()

    @property
    def is_quantized(self) -> bool:
        """Integer-typed tensor with quantization scale(s) (int8/uint8/int16 activations)."""
        return self.dtype in QUANTIZED_DTYPES and self.quantization is not None


@dataclass(frozen=True)
class OperatorCode:
    """One entry of the model's operator-code table: a builtin op or a custom op."""

    builtin_code: int
    custom_code: str
    version: int

    @property
    def name(self) -> str:
        if self.builtin_code == 32 or self.custom_code:  # CUSTOM
            return self.custom_code or "CUSTOM"
        return builtin_name(self.builtin_code)

    @property
    def is_custom(self) -> bool:
        return self.builtin_code == 32


@dataclass(frozen=True)
class OperatorInfo:
    index: int
    opcode_index: int
    op: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    custom: bool = False
    custom_options: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class SubgraphInfo:
    name: str
    tensors: tuple[TensorInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    operators: tuple[OperatorInfo, ...]

    def tensor(self, index: int) -> TensorInfo | None:
        """Tensor by index; ``None`` for -1 (an optional input left out) or out of range."""
        return self.tensors[index] if 0 <= index < len(self.tensors) else None


@dataclass(frozen=True)
class Signature:
    """A SignatureDef: names of the inputs/outputs -> tensor indices of ``subgraph_index``."""

    key: str
    inputs: dict[str, int]
    outputs: dict[str, int]
    subgraph_index: int = 0


@dataclass(frozen=True)
class TFLiteGraph:
    """What :func:`read_tflite` found. ``subgraphs[0]`` is the main graph."""

    version: int
    description: str
    operator_codes: tuple[OperatorCode, ...]
    subgraphs: tuple[SubgraphInfo, ...]
    buffer_sizes: tuple[int, ...]
    metadata_names: tuple[str, ...]
    signatures: tuple[Signature, ...] = ()
    # buffer index of each ``metadata_names`` entry
    metadata_buffers: tuple[int, ...] = field(default=(), repr=False, compare=False)
    # (offset, size) of each buffer's bytes inside ``data`` (size 0: no inline data)
    buffer_spans: tuple[tuple[int, int], ...] = field(default=(), repr=False, compare=False)
    data: bytes = field(default=b"", repr=False, compare=False)

    def constant(self, tensor: TensorInfo) -> Any:
        """A constant tensor's values as a numpy array, or ``None`` for activations.

        Only for small fixed-size dtypes (ints, floats); the values are raw (not dequantized).
        """
        import numpy as np

        if not 0 < tensor.buffer < len(self.buffer_spans):
            return None
        start, size = self.buffer_spans[tensor.buffer]
        if size == 0:
            return None
        dtype = _NUMPY_DTYPES.get(tensor.dtype)
        if dtype is None or size % np.dtype(dtype).itemsize:
            return None
        arr = np.frombuffer(
            self.data, dtype=dtype, count=size // np.dtype(dtype).itemsize, offset=start
        )
        n = int(np.prod(tensor.shape)) if tensor.shape else 1
        return arr.reshape(tensor.shape) if arr.size == n else arr

    def metadata_buffer(self, name: str) -> bytes | None:
        """The bytes of the metadata entry ``name`` (e.g. ``TFLITE_METADATA``), or ``None``."""
        for key, buffer in zip(self.metadata_names, self.metadata_buffers, strict=False):
            if key == name and 0 < buffer < len(self.buffer_spans):
                start, size = self.buffer_spans[buffer]
                return self.data[start : start + size] if size else None
        return None

    @property
    def signature_keys(self) -> tuple[str, ...]:
        return tuple(sig.key for sig in self.signatures)

    @property
    def main(self) -> SubgraphInfo:
        if not self.subgraphs:
            raise ValueError("model has no subgraphs")
        return self.subgraphs[0]

    @property
    def inputs(self) -> tuple[TensorInfo, ...]:
        return tuple(self.main.tensors[i] for i in self.main.inputs)

    @property
    def outputs(self) -> tuple[TensorInfo, ...]:
        return tuple(self.main.tensors[i] for i in self.main.outputs)

    def op_histogram(self, subgraph: int | None = None) -> dict[str, int]:
        """Operator name -> count, most frequent first (all subgraphs when ``subgraph`` is None)."""
        graphs = self.subgraphs if subgraph is None else (self.subgraphs[subgraph],)
        counts = Counter(op.op for g in graphs for op in g.operators)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def op_names(self) -> frozenset[str]:
        return frozenset(code.name for code in self.operator_codes)

    @property
    def contains_edgetpu_ops(self) -> bool:
        """True when compiled by ``edgetpu_compiler`` (needs the Edge TPU delegate to run)."""
        return EDGETPU_CUSTOM_OP in self.op_names

    @property
    def contains_flex_ops(self) -> bool:
        """True when some op is a TF (Flex) op, which no device runtime here can run."""
        return any(
            c.is_custom and c.custom_code.startswith(FLEX_PREFIX) for c in self.operator_codes
        )

    @property
    def parameter_bytes(self) -> int:
        return sum(self.buffer_sizes)


# --------------------------------------------------------------------------- parsing


def _quantization(table: _Table | None) -> Quantization | None:
    if table is None:
        return None
    scale = tuple(float(s) for s in table.scalars(2, "f"))
    zero_point = tuple(int(z) for z in table.scalars(3, "q"))
    if not scale:
        return None
    return Quantization(scale, zero_point, int(table.scalar(6, "i", 0)))


def _tensor(index: int, t: _Table) -> TensorInfo:
    dtype = tensor_type_name(int(t.scalar(1, "b", 0)))
    return TensorInfo(
        index=index,
        name=t.string(3),
        shape=tuple(int(d) for d in t.scalars(0, "i")),
        dtype=dtype,
        buffer=int(t.scalar(2, "I", 0)),
        quantization=_quantization(t.table(4)),
        shape_signature=tuple(int(d) for d in t.scalars(7, "i")),
    )


def _options(op: _Table) -> dict[str, Any]:
    kind = int(op.scalar(3, "B", 0))
    layout = _OPTION_LAYOUTS.get(kind)
    if layout is None:
        return {}
    table = op.table(4)
    if table is None:
        return {}
    _, fields = layout
    out: dict[str, Any] = {}
    for i, (name, fmt, default) in enumerate(fields):
        out[name] = table.scalar(i, fmt, default)
    if "padding" in out:
        p = out["padding"]
        out["padding"] = _PADDING[p] if 0 <= p < len(_PADDING) else str(p)
    if "fused_activation" in out:
        a = out["fused_activation"]
        out["fused_activation"] = _ACTIVATIONS[a] if 0 <= a < len(_ACTIVATIONS) else str(a)
    return out


def _operator_code(t: _Table) -> OperatorCode:
    deprecated = int(t.scalar(0, "b", 0))
    builtin = int(t.scalar(3, "i", 0))
    # schema.fbs: the real code is max(builtin_code, deprecated_builtin_code).
    return OperatorCode(max(builtin, deprecated), t.string(1), int(t.scalar(2, "i", 1)))


def _subgraph(g: _Table, codes: tuple[OperatorCode, ...]) -> SubgraphInfo:
    tensors = tuple(_tensor(i, t) for i, t in enumerate(g.tables(0)))
    inputs = tuple(int(i) for i in g.scalars(1, "i"))
    outputs = tuple(int(i) for i in g.scalars(2, "i"))
    for idx in inputs + outputs:
        if not 0 <= idx < len(tensors):
            raise ValueError(
                f"subgraph input/output tensor index {idx} out of range ({len(tensors)} tensors)"
            )
    operators = []
    for k, op in enumerate(g.tables(3)):
        opcode_index = int(op.scalar(0, "I", 0))
        if opcode_index >= len(codes):
            raise ValueError(
                f"operator {k} has opcode index {opcode_index} but only {len(codes)} operator codes"
            )
        op_in = tuple(int(i) for i in op.scalars(1, "i"))
        op_out = tuple(int(i) for i in op.scalars(2, "i"))
        for idx in op_in + op_out:
            if idx != -1 and not 0 <= idx < len(tensors):
                raise ValueError(f"operator {k} references tensor {idx} ({len(tensors)} tensors)")
        code = codes[opcode_index]
        custom_options = bytes(op.scalars(5, "B")) if code.is_custom else b""
        operators.append(
            OperatorInfo(
                k,
                opcode_index,
                code.name,
                op_in,
                op_out,
                _options(op),
                code.is_custom,
                custom_options,
            )
        )
    return SubgraphInfo(g.string(4), tensors, inputs, outputs, tuple(operators))


def _buffer_span(b: _Table) -> tuple[int, int, int]:
    """(start, inline size, total size) of a buffer's data."""
    vec = b._vector(0, 1)
    if vec is not None and vec[1]:
        return vec[0], vec[1], vec[1]
    size = int(b.scalar(2, "Q", 0)) if b.has(2) else 0  # large models: data outside (offset, size)
    return 0, 0, size


def _signature(t: _Table) -> Signature:
    def tensor_map(index: int) -> dict[str, int]:
        return {m.string(0): int(m.scalar(1, "I", 0)) for m in t.tables(index)}

    return Signature(t.string(2), tensor_map(0), tensor_map(1), int(t.scalar(4, "I", 0)))


def io_vector_offsets(data: bytes, subgraph: int = 0) -> tuple[int, int]:
    """Byte offsets of the first element of ``subgraph``'s inputs and outputs int32 vectors.

    Lets the exporter permute a model's outputs in place (same length, same values) without a
    flatbuffer builder. Raises ``ValueError`` when the model has no such subgraph or vectors.
    """
    buf = _Buf(bytes(data))
    try:
        model = buf.table(buf.deref(0))
        graphs = model.tables(2)
        if not 0 <= subgraph < len(graphs):
            raise ValueError(f"model has no subgraph {subgraph}")
        found = [graphs[subgraph]._vector(i, 4) for i in (1, 2)]
    except (struct.error, IndexError, OverflowError) as exc:
        raise ValueError(f"malformed TFLite flatbuffer: {exc}") from exc
    if found[0] is None or found[1] is None:
        raise ValueError("subgraph has no inputs/outputs vectors")
    return found[0][0], found[1][0]


def read_tflite(data: bytes) -> TFLiteGraph:
    """Parse a ``.tflite`` model's bytes; raises ``ValueError`` when they are not a valid model."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"read_tflite expects bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 8:
        raise ValueError(f"not a TFLite model: {len(data)} bytes is too short")
    if data[4:8] != FILE_IDENTIFIER:
        raise ValueError(
            f"not a TFLite model: file identifier is {data[4:8]!r}, expected {FILE_IDENTIFIER!r}"
        )
    buf = _Buf(data)
    try:
        model = buf.table(buf.deref(0))
        codes = tuple(_operator_code(t) for t in model.tables(1))
        subgraphs = tuple(_subgraph(g, codes) for g in model.tables(2))
        spans = [_buffer_span(b) for b in model.tables(4)]
        metadata_tables = model.tables(6)
        metadata = tuple(m.string(0) for m in metadata_tables)
        signatures = tuple(_signature(t) for t in model.tables(7))
        return TFLiteGraph(
            version=int(model.scalar(0, "I", 0)),
            description=model.string(3),
            operator_codes=codes,
            subgraphs=subgraphs,
            buffer_sizes=tuple(total for _, _, total in spans),
            metadata_names=metadata,
            signatures=signatures,
            metadata_buffers=tuple(int(m.scalar(1, "I", 0)) for m in metadata_tables),
            buffer_spans=tuple((start, size) for start, size, _ in spans),
            data=data,
        )
    except (struct.error, IndexError, OverflowError, RecursionError, MemoryError) as exc:
        raise ValueError(f"malformed TFLite flatbuffer: {exc}") from exc


def read_tflite_file(path: str | Path) -> TFLiteGraph:
    """Read and parse a model file; ``ValueError`` names the file when it is malformed."""
    p = Path(path)
    try:
        return read_tflite(p.read_bytes())
    except ValueError as exc:
        raise ValueError(f"{p}: {exc}") from exc
