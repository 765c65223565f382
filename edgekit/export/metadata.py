"""Self-describing artifacts: the ModelSpec and labels go inside the exported file.

``finalize_spec`` stamps what the conversion decided (input dtype, edgekit version, output
positions) onto the model's spec; ``write_artifact`` appends spec + labels (a ZIP, see
:mod:`edgekit.core.artifact`) and writes the file atomically: a killed export leaves the old
file or none, never half a model (nor a stray temp file). Also the output-order fix-up the converter needs. TF-free.
"""

from __future__ import annotations

import dataclasses
import re
import struct
from collections.abc import Sequence
from pathlib import Path

from edgekit import __version__
from edgekit.core.artifact import atomic_write_bytes, embed, read_embedded
from edgekit.core.flatbuffer import TFLiteGraph, io_vector_offsets, read_tflite
from edgekit.core.types import ModelSpec
from edgekit.errors import ExportError


def finalize_spec(
    spec: ModelSpec,
    graph: TFLiteGraph,
    *,
    labels: Sequence[str] | None = None,
    export_format: str = "",
) -> ModelSpec:
    """The spec to embed: input dtype read from the converted model, labels, version, format."""
    inputs = graph.inputs
    if len(inputs) != 1:
        raise ExportError(f"exported model has {len(inputs)} inputs; edgekit models take one image")
    t = inputs[0]
    if tuple(t.shape[1:3]) != tuple(spec.input_size):
        raise ExportError(
            f"exported input shape {list(t.shape)} does not match spec input_size {spec.input_size}"
        )
    params = dict(spec.decoder_params)
    if export_format:
        params["export_format"] = export_format
    return dataclasses.replace(
        spec,
        input_dtype=t.dtype,
        labels=tuple(labels) if labels is not None else spec.labels,
        decoder_params=params,
        version=__version__,
    )


def write_artifact(
    path: str | Path, flatbuffer: bytes, spec: ModelSpec, labels: Sequence[str] | None = None
) -> Path:
    """Embed spec + labels and write ``path`` atomically; re-reads the result to check it."""
    data = embed(flatbuffer, spec, tuple(labels) if labels is not None else None)
    back = read_embedded(data)
    if back.spec is None or back.spec.decoder != spec.decoder:
        raise ExportError(f"{path}: embedded spec did not read back")
    return atomic_write_bytes(path, data)


_OUTPUT_NAME = re.compile(r"^output_(\d+)$")


def order_outputs_by_signature(flatbuffer: bytes) -> bytes:
    """Put the main subgraph's outputs in the order the serving function returned them.

    The converter may list ``output_1, output_3, output_0, output_2``; the signature maps each
    ``output_<i>`` name to its tensor, so the outputs vector is permuted in place to
    ``output_0, output_1, ...``. Models without such a signature are returned unchanged.
    """
    graph = read_tflite(flatbuffer)
    sigs = [s for s in graph.signatures if s.subgraph_index == 0]
    if len(sigs) != 1:
        return flatbuffer
    named = {}
    for name, tensor in sigs[0].outputs.items():
        m = _OUTPUT_NAME.match(name)
        if m is None:
            return flatbuffer
        named[int(m.group(1))] = tensor
    wanted = [named[i] for i in sorted(named)]
    current = list(graph.main.outputs)
    if sorted(wanted) != sorted(current) or wanted == current:
        return flatbuffer
    _, out_pos = io_vector_offsets(flatbuffer)
    data = bytearray(flatbuffer)
    struct.pack_into(f"<{len(wanted)}i", data, out_pos, *wanted)
    if list(read_tflite(bytes(data)).main.outputs) != wanted:
        raise ExportError("could not reorder the exported model's outputs")
    return bytes(data)
