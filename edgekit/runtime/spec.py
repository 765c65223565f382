"""A model's :class:`~edgekit.core.types.ModelSpec` and labels, from its file and its outputs.

An edgekit export embeds its spec; :func:`complete_spec` fills in what the outputs decide
(which output is which). A third-party model is recognised by :func:`infer_spec` from its
input/output signature, trying the decoders of :data:`edgekit.runtime.decoders.DECODERS` in
order. Labels come from a file, the spec or the model's metadata; :func:`assumed_labels` and
:func:`label_mismatch` check them against the classes the outputs hold. Pure functions over
interpreter detail dicts (no interpreter is created here).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.artifact import parse_labels
from edgekit.core.types import COCO80_NAMES, COCO_KEYPOINT_NAMES, ModelSpec
from edgekit.errors import ModelLoadError, UnsupportedModelError
from edgekit.runtime.decoders import DECODERS
from edgekit.runtime.decoders.common import Outputs, detail_shape
from edgekit.runtime.input_domain import input_normalization
from edgekit.runtime.metadata import ModelMetadata

__all__ = [
    "ASSUMED_COCO80",
    "assumed_labels",
    "complete_spec",
    "consistency_warnings",
    "infer_spec",
    "label_mismatch",
    "labels_source_of",
    "load_labels",
    "postprocess_op_outputs",
]

ASSUMED_COCO80 = "assumed COCO-80 (an 80-class YOLO head without labels)"


# --- labels ----------------------------------------------------------------------------------


def load_labels(labels: str | os.PathLike[str] | Sequence[str]) -> tuple[str, ...]:
    """Labels from a file (one per line, or ``id name`` lines) or a sequence of names."""
    if isinstance(labels, (str, os.PathLike)):
        path = Path(labels)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise ModelLoadError(
                f"{path}: cannot read label file ({exc.strerror or exc})"
            ) from None
        out = parse_labels(text)
        if not out:
            raise ModelLoadError(f"{path}: label file is empty")
        return out
    return tuple(str(v) for v in labels)


def labels_source_of(labels: str | os.PathLike[str] | Sequence[str]) -> str:
    """How :attr:`Model.labels_source` names labels given to ``Model.load``."""
    return f"label file {labels}" if isinstance(labels, (str, os.PathLike)) else "given"


# --- spec inference --------------------------------------------------------------------------


def postprocess_op_outputs(interpreter: Any) -> list[int] | None:
    """The output tensor indices of the model's ``TFLite_Detection_PostProcess`` op, in the
    op's order, when the interpreter exposes its ops."""
    try:
        ops = interpreter._get_ops_details()
    except Exception:  # private API; absent or different in some backends
        return None
    for op in ops:
        if op.get("op_name") == "TFLite_Detection_PostProcess":
            return [int(t) for t in op["outputs"]]
    return None


def infer_spec(
    input_details: Sequence[dict],
    output_details: Sequence[dict],
    *,
    labels: Sequence[str] = (),
    postprocess_op_outputs: Sequence[int] | None = None,
    name: str = "",
    metadata: ModelMetadata | None = None,
) -> ModelSpec:
    """Recognise a third-party model from its signature and build its :class:`ModelSpec`.

    The input's float domain is the family's (:mod:`edgekit.runtime.input_domain`) unless
    ``metadata`` declares one; an Ultralytics task edgekit cannot decode (pose, segment, obb)
    is refused by name rather than misread as a detector."""
    meta = metadata or ModelMetadata()
    if meta.source == "ultralytics" and meta.task in ("pose", "segment", "obb"):
        raise UnsupportedModelError(
            f"an Ultralytics {meta.task} model: edgekit decodes Ultralytics detect and classify "
            "models only"
        )
    if len(input_details) != 1:
        raise UnsupportedModelError(f"expected one image input, found {len(input_details)}")
    inp = input_details[0]
    ishape = detail_shape(inp)
    if len(ishape) != 4 or ishape[3] not in (1, 3):
        raise UnsupportedModelError(f"input {list(ishape)} is not an image [1,H,W,3]")
    input_size = (ishape[1], ishape[2])
    outputs = Outputs(output_details, input_size, tuple(labels), postprocess_op_outputs)
    for decoder in DECODERS.values():
        if decoder.recognise is None:
            continue
        params = decoder.recognise(outputs)
        if params is not None:
            break
    else:
        shapes = [list(s) for s in outputs.shapes]
        known = ", ".join(d.known_as for d in DECODERS.values() if d.recognise is not None)
        raise UnsupportedModelError(
            f"cannot tell what kind of model this is from its outputs {shapes} (known: {known})"
        )
    return ModelSpec(
        task=decoder.task,
        decoder=decoder.name,
        input_size=input_size,
        input_dtype=np.dtype(inp["dtype"]).name,
        normalization=input_normalization(inp, decoder.name, meta.normalization),
        resize_mode=decoder.resize_mode,
        labels=outputs.labels,
        decoder_params=params,
        keypoint_names=COCO_KEYPOINT_NAMES if decoder.task == "pose" else (),
        name=name,
    )


def complete_spec(
    spec: ModelSpec, output_details: Sequence[dict], op_outputs: Sequence[int] | None
) -> ModelSpec:
    """Fill what an embedded spec may leave out and the outputs decide (output positions, an
    output stride): its decoder's ``resolve_outputs``."""
    decoder = DECODERS.get(spec.decoder)
    if decoder is None:  # Model refuses it, naming the known decoders
        return spec
    outputs = Outputs(output_details, spec.input_size, spec.labels, op_outputs)
    return dataclasses.replace(
        spec, decoder_params=decoder.resolve_outputs(outputs, spec.decoder_params)
    )


# --- labels of third-party models ------------------------------------------------------------


def num_classes(spec: ModelSpec, output_details: Sequence[dict]) -> int | None:
    """How many classes the outputs hold, when the spec's decoder can tell (a YOLO head, a
    classifier); ``None`` otherwise."""
    decoder = DECODERS.get(spec.decoder)
    if decoder is None or decoder.num_classes is None:
        return None
    return decoder.num_classes(spec, output_details)


def assumed_labels(spec: ModelSpec, output_details: Sequence[dict]) -> tuple[str, ...]:
    """The COCO-80 names for a YOLO head with 80 classes and no labels (what such third-party
    models almost always are: Ultralytics' COCO detectors); ``()`` otherwise."""
    if spec.labels or spec.decoder != "yolo" or num_classes(spec, output_details) != 80:
        return ()
    return COCO80_NAMES


def label_mismatch(spec: ModelSpec, output_details: Sequence[dict]) -> str | None:
    """A warning when the labels do not name exactly the classes the model outputs."""
    n = num_classes(spec, output_details)
    if n is None or not spec.labels:
        return None
    named = len(spec.labels) - int(spec.decoder_params.get("label_offset", 0))
    if named == n:
        return None
    more = (
        "classes past the last label print without a name" if named < n else "extra labels unused"
    )
    return f"{len(spec.labels)} labels for {n} output classes ({more})"


def consistency_warnings(
    spec: ModelSpec, outputs: Sequence[dict], metadata: ModelMetadata
) -> list[str]:
    """What the model's metadata and labels say that its outputs contradict."""
    out = []
    mismatch = label_mismatch(spec, outputs)
    if mismatch:
        out.append(mismatch)
    if metadata.task and metadata.task != spec.task:
        out.append(
            f"its metadata says task {metadata.task!r}, its outputs are a {spec.task} model's"
        )
    if metadata.input_size and tuple(metadata.input_size) != tuple(spec.input_size):
        h, w = metadata.input_size
        out.append(
            f"its metadata says input {h}x{w}, the input tensor is "
            f"{spec.input_size[0]}x{spec.input_size[1]} (the tensor is used)"
        )
    return out
