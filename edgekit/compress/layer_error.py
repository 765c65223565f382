"""Per-layer float vs int8 error: where in the network quantization loses accuracy.

Both ``.tflite`` files come from the same Keras graph, so the converter gives an op's output
tensor the same name in the float and the quantized model. Both run with every intermediate
tensor kept (and no XNNPACK delegate, which would hide them) on the same images; each op
output the two share (same name and shape) is dequantized and compared with the float one.
``rel_rmse`` = RMSE / float standard deviation, so layers of different scale compare; the
error accumulates along the network, and a layer whose error jumps above its input's is the
one to keep in float or to calibrate better.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgekit.errors import UsageError

__all__ = ["LayerError", "layer_errors"]


@dataclass(frozen=True)
class LayerError:
    """One op output compared over all images (op order of the quantized graph)."""

    name: str
    op: str
    shape: tuple[int, ...]
    rel_rmse: float
    cosine: float
    max_abs: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _OpOutput:
    index: int
    op: str
    scale: float
    zero_point: int


def _outputs_by_name(interpreter: Any) -> dict[str, _OpOutput]:
    """Op output tensor name -> where it is and how to dequantize it, in execution order."""
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    found: dict[str, _OpOutput] = {}
    for op in interpreter._get_ops_details():
        for t in op["outputs"]:
            if t in details:
                scale, zero_point = details[t]["quantization"]
                found.setdefault(
                    details[t]["name"],
                    _OpOutput(int(t), str(op["op_name"]), float(scale), int(zero_point)),
                )
    return found


def layer_errors(
    float_path: str | os.PathLike[str],
    quant_path: str | os.PathLike[str],
    images: Sequence[np.ndarray],
) -> list[LayerError]:
    """Compare every op output the two models share on RGB ``images`` (each model's own
    preprocessing from its embedded spec)."""
    from edgekit.runtime.interpreter import debug_interpreter
    from edgekit.runtime.model import Model
    from edgekit.runtime.preprocess import dequantize

    if not images:
        raise UsageError("layer_errors needs at least one image")
    fm, qm = Model.load(float_path, threads=1), Model.load(quant_path, threads=1)
    fi, qi = debug_interpreter(float_path), debug_interpreter(quant_path)
    f_out, q_out = _outputs_by_name(fi), _outputs_by_name(qi)
    common = [n for n in q_out if n in f_out]
    if not common:
        raise UsageError(f"{float_path} and {quant_path} share no op output names")
    ref: dict[str, list[np.ndarray]] = {n: [] for n in common}
    got: dict[str, list[np.ndarray]] = {n: [] for n in common}
    for img in images:
        for model, interp, store, outs in ((fm, fi, ref, f_out), (qm, qi, got, q_out)):
            x = model.preprocess(img)[0]
            interp.set_tensor(interp.get_input_details()[0]["index"], x)
            interp.invoke()
            for n in common:
                o = outs[n]
                store[n].append(dequantize(interp.get_tensor(o.index), o.scale, o.zero_point))
    rows = []
    for n in common:
        a = np.stack(ref[n]).reshape(-1)
        b = np.stack(got[n])
        if b.size != a.size:
            continue
        b = b.reshape(-1)
        err = b - a
        std = float(a.std())
        cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
        rows.append(
            LayerError(
                name=n.split(";")[0],
                op=q_out[n].op,
                shape=tuple(int(s) for s in got[n][0].shape),
                rel_rmse=float(np.sqrt((err**2).mean()) / std) if std > 0 else 0.0,
                cosine=cos,
                max_abs=float(np.abs(err).max()),
            )
        )
    return rows
