"""Self-describing artifacts: the ModelSpec and labels go inside the exported file.

``finalize_spec`` stamps what the conversion decided (input dtype, edgekit version, output
positions) onto the model's spec; ``write_artifact`` appends spec + labels (a ZIP, see
:mod:`edgekit.core.artifact`) and writes the file atomically: a killed export leaves the old
file or none, never half a model (nor a stray temp file). Also the output-order fix-up the converter needs. TF-free.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import secrets
import struct
from collections.abc import Sequence
from pathlib import Path

from edgekit import __version__
from edgekit.core.artifact import atomic_write_bytes, embed, read_embedded
from edgekit.core.types import ModelSpec
from edgekit.errors import ExportError
from edgekit.runtime.flatbuffer import TFLiteGraph, io_vector_offsets, read_tflite


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
    if isinstance(params.get("anchors"), dict):  # generator kwargs: the runtime's "anchor_config"
        params["anchor_config"] = params.pop("anchors")
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
    return write_atomic(path, data)


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that a process killed at any point leaves no partial file.

    On Linux the bytes go to an unnamed ``O_TMPFILE`` in the target folder (the kernel frees
    it if the process dies), which is linked under a temporary name only once complete and
    fsynced, then renamed over the target. Elsewhere: ``core.artifact.atomic_write_bytes``
    (temp file + rename; a kill mid-write may leave a ``.NAME.*.tmp`` behind).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not Path("/proc/self/fd").is_dir():
        return atomic_write_bytes(target, data)
    try:
        fd = os.open(target.parent, flag | os.O_WRONLY, 0o644)
    except OSError:  # filesystem without O_TMPFILE
        return atomic_write_bytes(target, data)
    tmp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        proc_fd = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
        try:  # linkat(..., AT_SYMLINK_FOLLOW) gives the unnamed file a name
            os.link(str(fd), tmp, src_dir_fd=proc_fd, follow_symlinks=True)
        finally:
            os.close(proc_fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    return target


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
