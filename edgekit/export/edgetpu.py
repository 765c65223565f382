"""Edge TPU: an op-compatibility report read from the flatbuffer, and the compiler wrapper.

TF-free (pure Python + the flatbuffer reader), so it runs anywhere, including on the device.

The report mirrors how ``edgetpu_compiler`` partitions a graph: it maps ops in execution order
until the first op it cannot map; that op and everything after it run on the CPU. Ops are
checked against Coral's documented list of supported operations and their constraints
(https://coral.ai/docs/edgetpu/models-intro/#supported-operations): quantized 8-bit tensors,
at most 3 dimensions larger than 1, static shapes, and per-op limits. The post-processing tail
of a model (``TFLite_Detection_PostProcess``, NMS V4/V5, and the decode ops after the last
convolution) is expected to run on the CPU and is reported as ``"cpu_tail"``: a model is
Edge-TPU-ready when every op before that tail is mappable.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.core.flatbuffer import (
    EDGETPU_CUSTOM_OP,
    OperatorInfo,
    SubgraphInfo,
    TensorInfo,
    TFLiteGraph,
    read_tflite,
)
from edgekit.errors import DependencyMissing, ExportError

INSTALL_HINT = (
    "edgetpu_compiler is x86-64 Linux only, from Coral's apt repository: "
    "curl https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo apt-key add - ; "
    'echo "deb https://packages.cloud.google.com/apt coral-edgetpu-stable main" | '
    "sudo tee /etc/apt/sources.list.d/coral-edgetpu.list ; "
    "sudo apt-get update && sudo apt-get install edgetpu-compiler"
)

TAIL_START_OPS = frozenset(
    {"TFLite_Detection_PostProcess", "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5"}
)
# The network body: what is left after the last of these (data-flow wise) is post-processing.
# FULLY_CONNECTED is not among them: a classifier's last Dense maps anyway, and box decoders
# use small matmuls (YOLO's fixed 4x4 ltrb -> cxcywh) that belong to the decode tail.
COMPUTE_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONV_3D"})
HEAD_OPS = frozenset({"CAST", "QUANTIZE", "DEQUANTIZE"})
EDGETPU_DTYPES = frozenset({"int8", "uint8"})
SOFTMAX_MAX_ELEMENTS = 16_000

# Coral's supported-operations table: TFLite op -> documented limitation ("" = none).
SUPPORTED_OPS: dict[str, str] = {
    "ADD": "",
    "AVERAGE_POOL_2D": "no fused activation function",
    "CONCATENATION": "no fused activation; a constant input only as the second of two (zero padding)",
    "CONV_2D": "same dilation in x and y",
    "DEPTHWISE_CONV_2D": "same dilation in x and y",
    "EXPAND_DIMS": "",
    "FULLY_CONNECTED": "default weights format; output tensor one-dimensional",
    "L2_NORMALIZATION": "",
    "LOGISTIC": "",
    "LSTM": "unidirectional only",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "unidirectional only",
    "MAXIMUM": "",
    "MAX_POOL_2D": "no fused activation function",
    "MEAN": "no reduction in the batch dimension; a z-reduction needs z a multiple of 4",
    "MINIMUM": "",
    "MUL": "",
    "PACK": "no packing in the batch dimension",
    "PAD": "no padding in the batch dimension",
    "PRELU": "alpha one-dimensional (only the innermost dimension larger than 1)",
    "QUANTIZE": "",
    "REDUCE_MAX": "not on the batch dimension",
    "REDUCE_MIN": "not on the batch dimension",
    "RELU": "",
    "RELU6": "",
    "RELU_N1_TO_1": "",
    "RESHAPE": "some reshapes of large tensors are not mapped",
    "RESIZE_BILINEAR": "input/output a 3-dimensional tensor; may stay on CPU to avoid precision loss",
    "RESIZE_NEAREST_NEIGHBOR": "input/output a 3-dimensional tensor; may stay on CPU to avoid precision loss",
    "RSQRT": "",
    "SLICE": "",
    "SOFTMAX": f"1-D input with at most {SOFTMAX_MAX_ELEMENTS} elements",
    "SPACE_TO_DEPTH": "",
    "SPLIT": "no splitting in the batch dimension",
    "SQUEEZE": "",
    "STRIDED_SLICE": "all strides 1, no ellipsis or new-axis mask",
    "SUB": "",
    "SUM": "not on the batch dimension",
    "SQUARED_DIFFERENCE": "",
    "TANH": "",
    "TRANSPOSE": "",
    "TRANSPOSE_CONV": "",
}

# Why some common ops are not mappable (the rest get a generic reason).
KNOWN_UNSUPPORTED: dict[str, str] = {
    "HARD_SWISH": "HARD_SWISH is not a supported Edge TPU op (use ReLU/ReLU6, e.g. a minimalistic MobileNetV3)",
    "DEQUANTIZE": "DEQUANTIZE means float computation follows; the Edge TPU runs only 8-bit ops",
    "GELU": "GELU is not a supported Edge TPU op",
    "LEAKY_RELU": "LEAKY_RELU is not a supported Edge TPU op (use ReLU or PReLU with shared axes)",
    "DIV": "DIV is not a supported Edge TPU op (multiply by a reciprocal constant instead)",
    "EXP": "EXP is not a supported Edge TPU op",
    "GATHER": "GATHER is not a supported Edge TPU op",
    "ARG_MAX": "ARG_MAX is not a supported Edge TPU op",
    "CAST": "CAST is not a supported Edge TPU op",
}


@dataclass(frozen=True)
class OpCheck:
    index: int
    op: str
    status: str  # mappable | unmappable | cpu | cpu_head | cpu_tail | edgetpu (compiled models)
    quantized: bool
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "op": self.op,
            "status": self.status,
            "quantized": self.quantized,
            "reason": self.reason,
        }


def _activations(g: SubgraphInfo, graph: TFLiteGraph, indices: tuple[int, ...]) -> list[TensorInfo]:
    """Tensors computed at run time (no constant data in a buffer)."""
    sizes = graph.buffer_sizes
    out = []
    for i in indices:
        t = g.tensor(i)
        if t is not None and not (0 < t.buffer < len(sizes) and sizes[t.buffer] > 0):
            out.append(t)
    return out


def _big_dims(shape: tuple[int, ...]) -> int:
    return sum(1 for d in shape if d != 1)


def _axis_values(
    graph: TFLiteGraph, g: SubgraphInfo, op: OperatorInfo, pos: int, rank: int
) -> list[int] | None:
    if len(op.inputs) <= pos or op.inputs[pos] < 0:
        return None
    values = graph.constant(g.tensors[op.inputs[pos]])
    if values is None:
        return None
    return [int(v) % rank if rank else int(v) for v in values.reshape(-1)]


def _op_constraint(graph: TFLiteGraph, g: SubgraphInfo, op: OperatorInfo) -> str | None:
    """The documented per-op limitation this op violates, or None."""
    name, opts = op.op, op.options
    ins = [g.tensors[i] for i in op.inputs if i >= 0]
    outs = [g.tensors[i] for i in op.outputs if i >= 0]
    x = ins[0] if ins else None
    rank = len(x.shape) if x is not None else 0
    fused = opts.get("fused_activation", "NONE")
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION") and fused != "NONE":
        return f"{name} with a fused {fused} activation"
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D") and opts.get("dilation_w", 1) != opts.get(
        "dilation_h", 1
    ):
        return f"{name} with different x/y dilation ({opts['dilation_w']} vs {opts['dilation_h']})"
    if name == "FULLY_CONNECTED" and outs and _big_dims(outs[0].shape) > 1:
        return f"FULLY_CONNECTED output {list(outs[0].shape)} is not one-dimensional"
    if name == "SOFTMAX" and x is not None:
        n = 1
        for d in x.shape:
            n *= max(d, 1)
        if _big_dims(x.shape) > 1 or n > SOFTMAX_MAX_ELEMENTS:
            return (
                f"SOFTMAX input {list(x.shape)} is not 1-D with <= {SOFTMAX_MAX_ELEMENTS} elements"
            )
    if name == "CONCATENATION":
        consts = [t for t in ins if graph.constant(t) is not None]
        if consts and len(ins) != 2:
            return "CONCATENATION of a constant tensor with more than two inputs"
    if name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "SPLIT"):
        data_pos, axis_pos = (1, 0) if name == "SPLIT" else (0, 1)
        if len(ins) > data_pos:
            x = g.tensors[op.inputs[data_pos]]
            rank = len(x.shape)
        axes = _axis_values(graph, g, op, axis_pos, rank)
        if axes is not None and 0 in axes:
            return f"{name} over the batch dimension"
        if name == "MEAN" and axes is not None and rank == 4 and 3 in axes and x.shape[3] % 4:
            return f"MEAN over z with depth {x.shape[3]} (must be a multiple of 4)"
    if name == "PACK" and opts.get("axis", 0) == 0 and ins and len(ins[0].shape) >= 1:
        return "PACK along the batch dimension"
    if name == "PAD" and len(op.inputs) > 1:
        pads = graph.constant(g.tensors[op.inputs[1]])
        if (
            pads is not None
            and pads.size >= 2
            and (int(pads.reshape(-1)[0]) or int(pads.reshape(-1)[1]))
        ):
            return "PAD in the batch dimension"
    if name == "PRELU" and len(ins) > 1 and _big_dims(ins[1].shape) > 1:
        return f"PRELU alpha {list(ins[1].shape)} is not one-dimensional"
    if (
        name in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR")
        and x is not None
        and rank == 4
        and x.shape[0] != 1
    ):
        return f"{name} input {list(x.shape)} is not 3-dimensional"
    if name == "STRIDED_SLICE":
        if opts.get("ellipsis_mask", 0) or opts.get("new_axis_mask", 0):
            return "STRIDED_SLICE with an ellipsis or new-axis mask"
        strides = (
            graph.constant(g.tensors[op.inputs[3]])
            if len(op.inputs) > 3 and op.inputs[3] >= 0
            else None
        )
        if strides is not None and any(int(s) != 1 for s in strides.reshape(-1)):
            return f"STRIDED_SLICE with strides {strides.reshape(-1).tolist()} (all must be 1)"
    return None


def _op_reason(graph: TFLiteGraph, g: SubgraphInfo, op: OperatorInfo) -> tuple[bool, str | None]:
    """(quantized, reason it cannot be mapped or None)."""
    acts = _activations(g, graph, op.inputs) + _activations(g, graph, op.outputs)
    not_8bit = [t for t in acts if t.dtype not in EDGETPU_DTYPES]
    quantized = bool(acts) and not not_8bit
    if op.op not in SUPPORTED_OPS:
        if op.custom:
            return quantized, f"custom op {op.op!r} is not supported by the Edge TPU"
        return quantized, KNOWN_UNSUPPORTED.get(
            op.op, f"{op.op} is not in the Edge TPU's supported operations"
        )
    if not_8bit:
        t = not_8bit[0]
        return (
            quantized,
            f"not quantized: {t.dtype} tensor {t.name!r} (the Edge TPU needs int8/uint8)",
        )
    for t in acts:
        if _big_dims(t.shape) > 3:
            return (
                quantized,
                f"tensor {t.name!r} {list(t.shape)} has more than 3 dimensions larger than 1",
            )
        if any(d < 0 for d in t.shape_signature[1:]):
            return quantized, f"tensor {t.name!r} has a dynamic shape {list(t.shape_signature)}"
    return quantized, _op_constraint(graph, g, op)


def _dataflow(g: SubgraphInfo) -> tuple[list[list[int]], list[bool]]:
    """Per op: the ops producing its inputs, and whether a convolution depends on it."""
    producer: dict[int, int] = {}
    for op in g.operators:
        for t in op.outputs:
            producer[t] = op.index
    parents = [sorted({producer[t] for t in op.inputs if t in producer}) for op in g.operators]
    feeds_compute = [op.op in COMPUTE_OPS for op in g.operators]
    for op in reversed(g.operators):  # execution order is topological
        if feeds_compute[op.index]:
            for p in parents[op.index]:
                feeds_compute[p] = True
    return parents, feeds_compute


def post_processing_ops(g: SubgraphInfo) -> frozenset[int]:
    """Indices of the post-processing tail: NMS / detection post-processing ops and every op
    no convolution depends on (decode arithmetic, argmax, ...)."""
    _, feeds_compute = _dataflow(g)
    return frozenset(
        op.index for op in g.operators if not feeds_compute[op.index] or op.op in TAIL_START_OPS
    )


def check_edgetpu(model: TFLiteGraph | bytes | str | os.PathLike[str]) -> dict[str, Any]:
    """Op-compatibility report of a model for the Edge TPU (see module docstring).

    Walks the ops in execution order with the data flow: an op is ``"mappable"`` when it is
    supported and every op it depends on is mapped; ``"cpu_head"`` for input conversions
    (CAST/QUANTIZE/DEQUANTIZE of the raw input) that run on the CPU before the Edge TPU
    subgraph; ``"unmappable"`` for an unsupported op in the middle of the network (the
    compiler cuts the graph there: ``first_unmappable``); ``"cpu"`` for ops that depend on an
    unmapped op (one Edge TPU subgraph only); ``"cpu_tail"`` for unmapped post-processing
    (NMS, detection post-process, decode ops no convolution depends on).

    Returns ``{"mappable_ops", "total_ops", "first_unmappable": {"index", "op", "reason"} |
    None, "ops": [per-op dicts], "compiled", "edgetpu_ready"}``.
    """
    graph = model if isinstance(model, TFLiteGraph) else _read(model)
    g = graph.main
    ops = g.operators
    if graph.contains_edgetpu_ops:
        checks = [
            OpCheck(op.index, op.op, "edgetpu", True)
            if op.op == EDGETPU_CUSTOM_OP
            else OpCheck(op.index, op.op, "cpu", False, "outside the compiled Edge TPU subgraph")
            for op in ops
        ]
        return _report(checks, None, compiled=True)
    parents, feeds_compute = _dataflow(g)
    checks: list[OpCheck] = []
    first: dict[str, Any] | None = None
    for op in ops:
        quantized, reason = _op_reason(graph, g, op)
        up = [checks[p] for p in parents[op.index]]
        blocked = next((c for c in up if c.status in ("unmappable", "cpu", "cpu_tail")), None)
        head_only = all(c.status == "cpu_head" for c in up)
        tail = not feeds_compute[op.index] or op.op in TAIL_START_OPS
        if reason is None and blocked is None:
            status = "mappable"
        elif reason is not None and head_only and op.op in HEAD_OPS:
            status = "cpu_head"
        elif tail:
            status = "cpu_tail"
        elif reason is not None and blocked is None:
            status = "unmappable"
            if first is None:
                first = {"index": op.index, "op": op.op, "reason": reason}
        else:
            status = "cpu"
        if reason is None and blocked is not None:
            reason = f"depends on #{blocked.index} {blocked.op}, which is not mapped (one Edge TPU subgraph only)"
        checks.append(OpCheck(op.index, op.op, status, quantized, reason))
    return _report(checks, first, compiled=False)


def _report(
    checks: list[OpCheck], first: dict[str, Any] | None, *, compiled: bool
) -> dict[str, Any]:
    mapped = "edgetpu" if compiled else "mappable"
    return {
        "mappable_ops": sum(c.status == mapped for c in checks),
        "total_ops": len(checks),
        "first_unmappable": first,
        "ops": [c.as_dict() for c in checks],
        "compiled": compiled,
        "edgetpu_ready": compiled
        or (first is None and any(c.status == "mappable" for c in checks)),
    }


def summarize(report: dict[str, Any]) -> str:
    """One line for the CLI."""
    if report["compiled"]:
        return f"already compiled for the Edge TPU ({report['mappable_ops']} Edge TPU op(s), {report['total_ops']} op(s) in all)"
    n, m = report["mappable_ops"], report["total_ops"]
    tail = sum(op["status"] == "cpu_tail" for op in report["ops"])
    first = report["first_unmappable"]
    if first is None:
        extra = f", {tail} post-processing op(s) on CPU" if tail else ""
        return f"Edge-TPU-ready: {n}/{m} ops mappable{extra}"
    return f"not Edge-TPU-ready: {n}/{m} ops mappable; graph cut at #{first['index']} {first['op']}: {first['reason']}"


def _read(model: bytes | str | os.PathLike[str]) -> TFLiteGraph:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return read_tflite(bytes(model))
    path = Path(model)
    try:
        return read_tflite(path.read_bytes())
    except OSError as exc:
        raise ExportError(f"{path}: cannot read model ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ExportError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------- compiler


@dataclass(frozen=True)
class CompileResult:
    """What ``edgetpu_compiler`` made and said."""

    path: Path
    log: str
    version: str | None
    ops_on_edgetpu: int | None
    ops_on_cpu: int | None
    total_ops: int | None
    subgraphs: int | None
    on_chip_memory: str | None
    off_chip_memory: str | None
    op_table: tuple[tuple[str, int, str], ...] = field(default=())


_PATTERNS = {
    "version": r"Edge TPU Compiler version\s+(\S+)",
    "ops_on_edgetpu": r"Number of operations that will run on Edge TPU:\s*(\d+)",
    "ops_on_cpu": r"Number of operations that will run on CPU:\s*(\d+)",
    "total_ops": r"Total number of operations:\s*(\d+)",
    "subgraphs": r"Number of Edge TPU subgraphs:\s*(\d+)",
    "on_chip_memory": r"On-chip memory used for caching model parameters:\s*(\S+)",
    "off_chip_memory": r"Off-chip memory used for streaming uncached model parameters:\s*(\S+)",
}
_OP_ROW = re.compile(r"^([A-Za-z_][A-Za-z0-9_\-]*)\s+(\d+)\s+(\S.*?)\s*$")


def parse_compiler_log(log: str) -> dict[str, Any]:
    """Fields of an ``edgetpu_compiler`` log (None when absent) and its per-op table."""
    out: dict[str, Any] = {}
    for key, pattern in _PATTERNS.items():
        m = re.search(pattern, log)
        value = m.group(1) if m else None
        out[key] = (
            int(value)
            if value is not None and key not in ("version", "on_chip_memory", "off_chip_memory")
            else value
        )
    rows = []
    in_table = False
    for line in log.splitlines():
        if re.match(r"^\s*Operator\s+Count\s+Status", line):
            in_table = True
            continue
        if in_table:
            m = _OP_ROW.match(line.strip())
            if m:
                rows.append((m.group(1), int(m.group(2)), m.group(3)))
            elif line.strip() and rows:
                break
    out["op_table"] = tuple(rows)
    # With every op mapped the compiler omits the per-device counts.
    if out["ops_on_edgetpu"] is None and out["total_ops"] is not None and rows:
        mapped = sum(n for _, n, status in rows if status.startswith("Mapped to Edge TPU"))
        out["ops_on_edgetpu"] = mapped
        out["ops_on_cpu"] = sum(n for _, n, _ in rows) - mapped
    return out


def compile_edgetpu(
    tflite_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    compiler: str = "edgetpu_compiler",
    timeout_s: float = 600.0,
    extra_args: tuple[str, ...] = (),
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
) -> CompileResult:
    """Run ``edgetpu_compiler`` on a full-integer model; returns the compiled file and its log.

    Raises :class:`DependencyMissing` (with install instructions) when the compiler is not on
    PATH, :class:`ExportError` with the log's tail when it fails or writes nothing.
    """
    src = Path(tflite_path)
    if not src.is_file():
        raise ExportError(f"{src}: no such model to compile")
    exe = shutil.which(compiler)
    if exe is None:
        raise DependencyMissing(f"{compiler} not found on PATH", hint=INSTALL_HINT)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cmd = [exe, "-s", "-o", str(out), *extra_args, str(src)]
    try:
        proc = run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ExportError(f"{compiler} timed out after {timeout_s:.0f}s on {src}") from None
    except OSError as exc:
        raise ExportError(f"cannot run {exe}: {exc}") from None
    log = (proc.stdout or "") + (proc.stderr or "")
    tail = "\n".join(log.strip().splitlines()[-15:])
    if proc.returncode != 0:
        raise ExportError(f"{compiler} failed on {src} (exit code {proc.returncode}):\n{tail}")
    compiled = out / f"{src.stem}_edgetpu.tflite"
    if not compiled.is_file():
        raise ExportError(f"{compiler} reported success but wrote no {compiled}:\n{tail}")
    try:
        graph = read_tflite(compiled.read_bytes())
    except ValueError as exc:
        raise ExportError(f"{compiled}: compiler output is not a valid model ({exc})") from None
    fields = parse_compiler_log(log)
    if not graph.contains_edgetpu_ops:
        raise ExportError(f"{compiled}: no op was mapped to the Edge TPU:\n{tail}")
    return CompileResult(path=compiled, log=log, **fields)
