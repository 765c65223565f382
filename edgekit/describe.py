"""What is inside a ``.tflite`` model: the library behind ``edgekit info``. No TensorFlow.

:func:`describe_model` reads the flatbuffer itself (tensors, quantization, ops) with the
pure-Python reader, the appended spec/labels, and asks the runtime what kind of model it is.
It works on models no interpreter here can load (Edge TPU-compiled models on a CPU): the
flatbuffer alone is reported then, with ``loadable: false`` and the reason.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edgekit.core.artifact import read_embedded
from edgekit.errors import EdgekitError, ModelLoadError
from edgekit.runtime.spec import ASSUMED_COCO80

__all__ = ["describe_model", "format_description"]

LABELS_SHOWN = 5


def _tensor(t: Any, runtime_shapes: dict[int, list[int]]) -> dict[str, Any]:
    q = t.quantization
    shape = list(t.shape) if t.shape else runtime_shapes.get(t.index, list(t.shape_signature))
    return {
        "name": t.name,
        "shape": shape,
        "dtype": t.dtype,
        "quantization": (
            None
            if q is None
            else {
                "scale": list(q.scale) if len(q.scale) > 1 else q.scale[0],
                "zero_point": list(q.zero_point)
                if len(q.zero_point) > 1
                else (q.zero_point[0] if q.zero_point else 0),
                **({"axis": q.quantized_dimension} if len(q.scale) > 1 else {}),
            }
        ),
    }


def _edgetpu_report(graph: Any) -> dict[str, Any] | None:
    """The export helper's TF-free Edge TPU op-compatibility check (``None`` when absent).

    The per-op list is left out; ``summary`` is its one-line verdict."""
    try:
        from edgekit.export.edgetpu import check_edgetpu, summarize
    except ImportError:
        return None
    try:
        report = dict(check_edgetpu(graph))
    except ValueError as exc:  # a graph the checker cannot follow: say so, keep the rest
        return {"error": str(exc)}
    summary = summarize(report)
    report.pop("ops", None)
    report["summary"] = summary
    return report


def _spec_dict(spec: Any) -> dict[str, Any]:
    """The spec as JSON, without labels (reported apart) and with long lists (anchors) summarised."""
    data = dataclasses.asdict(spec)
    data.pop("labels", None)
    params = {}
    for key, value in data.get("decoder_params", {}).items():
        if isinstance(value, (list, tuple)) and len(value) > 16:
            value = f"<{len(value)} values>"
        params[key] = value
    data["decoder_params"] = params
    return data


def describe_model(path: str | Path, *, load: bool = True) -> dict[str, Any]:
    """A JSON-ready description of the model at ``path``.

    Keys: ``path``, ``size_bytes``, ``inputs``/``outputs`` (name, shape, dtype, quantization),
    ``ops`` (histogram), ``op_count``, ``task``/``decoder``/``spec`` (``spec_source`` says
    ``embedded`` when edgekit wrote it, ``inferred`` when the runtime recognised the outputs),
    ``labels`` (``count``, ``first``, ``source``: where they came from, e.g. an Ultralytics
    dict, a TFLite metadata label file, or "assumed COCO-80"), ``about`` (what the model's own
    metadata says: name, description, author, licence, version, task, input size, stride),
    ``warnings`` (metadata that could not be used, labels that do not match the outputs),
    ``edgetpu_ops``, ``flex_ops``, ``edgetpu`` (the op compatibility report or ``None``),
    ``loadable`` and ``load_error``, ``decode_error`` (set when a loaded model's decoder cannot
    read its outputs on a blank frame), ``backend``.

    Raises :class:`ModelLoadError` when the file is missing or is not a readable TFLite model.
    With ``load=False`` no interpreter is created (flatbuffer and embedded files only).
    """
    from edgekit.core.flatbuffer import read_tflite
    from edgekit.runtime.interpreter import read_model_bytes
    from edgekit.runtime.metadata import ModelMetadata, read_metadata

    data, name, _ = read_model_bytes(path)
    try:
        graph = read_tflite(data)
        graph.main  # noqa: B018 - a model without a subgraph is not usable
    except ValueError as exc:
        raise ModelLoadError(
            f"{name}: not a readable TFLite model (truncated or corrupt: {exc})"
        ) from None
    try:
        embedded = read_embedded(data)
    except ValueError as exc:
        raise ModelLoadError(f"{name}: embedded edgekit spec is malformed ({exc})") from None

    spec = embedded.spec
    spec_source = "embedded" if spec is not None else None
    metadata = read_metadata(data, graph) if spec is None else ModelMetadata()
    labels = tuple(embedded.labels)
    labels_source = "edgekit spec" if spec is not None and spec.labels else ""
    if not labels and metadata.labels:
        labels, labels_source = metadata.labels, metadata.labels_source
    elif labels and not labels_source:
        labels_source = "labelmap.txt (appended)"
    warnings = list(metadata.warnings)
    loadable: bool | None = None
    load_error = decode_error = None
    backend = None
    runtime_shapes: dict[int, list[int]] = {}
    if load:
        try:
            from edgekit.runtime.model import Model

            model = Model.load(path, log_warnings=False)
        except EdgekitError as exc:
            loadable, load_error = False, str(exc)
        else:
            loadable = True
            try:  # one blank frame through the decoder: a spec that lies shows here
                model.check()
            except EdgekitError as exc:
                decode_error = str(exc)
            # Some outputs (e.g. TFLite_Detection_PostProcess's) have no static shape in the
            # file; the allocated interpreter knows it.
            for detail in (*model.input_details, *model.output_details):
                runtime_shapes[int(detail["index"])] = [int(d) for d in detail["shape"]]
            backend = {"name": model.backend.name, "threads": model.backend.threads}
            if model.backend.delegate:
                backend["delegate"] = model.backend.delegate
            if spec is None:
                spec, spec_source = model.spec, "inferred"
            labels = tuple(model.labels or labels)
            labels_source = model.labels_source or labels_source
            warnings = list(model.warnings)
    if spec is None:
        spec, spec_source, assumed = _infer_from_graph(graph, labels, Path(path).stem, metadata)
        if assumed:
            labels, labels_source = assumed, ASSUMED_COCO80
    if spec is not None and not labels:
        labels = tuple(spec.labels)

    return {
        "path": str(path),
        "size_bytes": len(data),
        "parameter_bytes": graph.parameter_bytes,
        "description": graph.description,
        "inputs": [_tensor(t, runtime_shapes) for t in graph.inputs],
        "outputs": [_tensor(t, runtime_shapes) for t in graph.outputs],
        "subgraphs": len(graph.subgraphs),
        "op_count": sum(len(g.operators) for g in graph.subgraphs),
        "ops": graph.op_histogram(),
        "task": spec.task if spec is not None else None,
        "decoder": spec.decoder if spec is not None else None,
        "spec_source": spec_source,
        "spec": _spec_dict(spec) if spec is not None else None,
        "labels": {
            "count": len(labels),
            "first": list(labels[:LABELS_SHOWN]),
            "source": labels_source if labels else "",
        },
        "about": {k: v for k, v in metadata.as_dict().items() if k != "warnings"},
        "warnings": warnings,
        "embedded_files": list(embedded.names),
        "metadata": list(graph.metadata_names),
        "edgetpu_ops": graph.contains_edgetpu_ops,
        "flex_ops": graph.contains_flex_ops,
        "edgetpu": _edgetpu_report(graph),
        "loadable": loadable,
        "load_error": load_error,
        "decode_error": decode_error,
        "backend": backend,
    }


# Shapes of TFLite_Detection_PostProcess's outputs (boxes, classes, scores, count), which the
# file leaves empty: -1 is the number of detections, known only once allocated.
_POSTPROCESS_SHAPES = ((1, -1, 4), (1, -1), (1, -1), (1,))


def _details(
    tensors: Any, known_shapes: dict[int, tuple[int, ...]] | None = None
) -> list[dict[str, Any]]:
    """Flatbuffer tensors as interpreter-style detail dicts (what ``infer_spec`` reads)."""
    import numpy as np

    known_shapes = known_shapes or {}
    out = []
    for t in tensors:
        shape = t.shape or known_shapes.get(t.index, t.shape)
        q = t.quantization
        scale = float(q.scale[0]) if q is not None and len(q.scale) == 1 else 0.0
        zero = int(q.zero_point[0]) if q is not None and len(q.zero_point) == 1 else 0
        try:
            dtype = np.dtype(t.dtype)
        except TypeError:
            dtype = np.dtype("float32")
        out.append(
            {
                "name": t.name,
                "index": t.index,
                "shape": np.array(shape, dtype=np.int32),
                "dtype": dtype,
                "quantization": (scale, zero),
            }
        )
    return out


def _infer_from_graph(
    graph: Any, labels: tuple[str, ...], name: str, metadata: Any
) -> tuple[Any, str | None, tuple[str, ...]]:
    """Recognise the model from the flatbuffer's tensors alone (no interpreter): its spec,
    ``"inferred"``, and the labels assumed for it (COCO-80 for an 80-class YOLO head)."""
    from edgekit.runtime.spec import assumed_labels, infer_spec

    op_outputs = next(
        (
            list(op.outputs)
            for op in graph.main.operators
            if op.op == "TFLite_Detection_PostProcess"
        ),
        None,
    )
    known = dict(zip(op_outputs or (), _POSTPROCESS_SHAPES, strict=False))
    outputs = _details(graph.outputs, known)
    try:
        spec = infer_spec(
            _details(graph.inputs),
            outputs,
            labels=labels,
            postprocess_op_outputs=op_outputs,
            name=name,
            metadata=metadata,
        )
    except (EdgekitError, ValueError):
        return None, None, ()
    return spec, "inferred", assumed_labels(spec, outputs)


def _shape(shape: list[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _quant(q: dict[str, Any] | None) -> str:
    if q is None:
        return ""
    scale, zp = q["scale"], q["zero_point"]
    if isinstance(scale, list):
        return f"per-axis({len(scale)}, axis {q.get('axis', 0)})"
    return f"scale={scale:.6g} zero_point={zp}"


def _about_lines(about: dict[str, Any]) -> list[str]:
    """What the model's own metadata says, as ``about:``/``licence:`` lines."""
    if not about:
        return []
    source = {"ultralytics": "Ultralytics metadata", "tflite-support": "TFLite metadata"}.get(
        about.get("source", ""), about.get("source", "metadata")
    )
    head = ": ".join(about[key] for key in ("name", "description") if about.get(key))
    lines = [f"about: {head} ({source})" if head else f"about: ({source})"]
    details = [
        f"{key} {about[key]}"
        for key in ("author", "version", "date", "task", "stride")
        if about.get(key)
    ]
    if about.get("input_size"):
        h, w = about["input_size"]
        details.append(f"imgsz {h}x{w}")
    if details:
        lines.append("       " + ", ".join(str(d) for d in details))
    if about.get("license"):
        lines.append(f"licence: {about['license']}")
    return lines


def format_description(info: dict[str, Any]) -> str:
    """Human-readable multi-line text of :func:`describe_model`'s result."""
    lines = [f"{info['path']}  ({info['size_bytes']:,} bytes)"]
    if info["task"]:
        lines.append(
            f"kind: {info['task']} (decoder {info['decoder']}, spec {info['spec_source']})"
        )
        spec = info["spec"] or {}
        extra = []
        if spec.get("input_size"):
            h, w = spec["input_size"]
            extra.append(f"input {h}x{w} (HxW) {spec.get('input_dtype', '')}")
        if spec.get("resize_mode"):
            extra.append(
                {"resize": "stretched", "letterbox": "letterboxed"}.get(
                    spec["resize_mode"], spec["resize_mode"]
                )
            )
        if spec.get("normalization"):
            extra.append(
                f"normalization mean={spec['normalization'][0]:g} std={spec['normalization'][1]:g}"
            )
        if extra:
            lines.append("      " + ", ".join(extra))
    else:
        lines.append("kind: unrecognised (no embedded spec, outputs not recognised)")
    for role in ("inputs", "outputs"):
        lines.append(f"{role}:")
        for t in info[role]:
            lines.append(
                f"  {t['name'] or '?'}  {t['dtype']} {_shape(t['shape'])}  {_quant(t['quantization'])}".rstrip()
            )
    ops = info["ops"]
    lines.append(f"ops: {info['op_count']} in {info['subgraphs']} subgraph(s), {len(ops)} kinds")
    lines.append("  " + ", ".join(f"{k} x{v}" for k, v in ops.items()))
    lines += _about_lines(info.get("about") or {})
    labels = info["labels"]
    if labels["count"]:
        first = ", ".join(repr(x) for x in labels["first"])
        more = ", ..." if labels["count"] > len(labels["first"]) else ""
        source = labels.get("source")
        lines.append(
            f"labels: {labels['count']} ({first}{more})" + (f" - {source}" if source else "")
        )
    else:
        lines.append("labels: none")
    for warning in info.get("warnings") or ():
        lines.append(f"warning: {warning}")
    lines.append(
        f"edge tpu ops: {'yes (compiled for the Edge TPU)' if info['edgetpu_ops'] else 'no'}"
    )
    if info["flex_ops"]:
        lines.append("flex (TF select) ops: yes - no device runtime here can run them")
    tpu = info["edgetpu"]
    if tpu is not None:
        lines.append(f"edge tpu mapping: {tpu.get('summary') or tpu.get('error')}")
    if info["loadable"] is True:
        b = info["backend"] or {}
        lines.append(
            f"loads on: {b.get('name')} ({b.get('threads')} threads{', ' + b['delegate'] if b.get('delegate') else ''})"
        )
    elif info["loadable"] is False:
        lines.append(f"loads on this machine: no - {info['load_error']}")
    if info.get("decode_error"):
        lines.append(f"decodes a blank frame: no - {info['decode_error']}")
    return "\n".join(lines)
