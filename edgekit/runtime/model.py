"""A loaded model: interpreter + spec + labels, with preprocess / invoke / postprocess.

The spec comes from the model itself when edgekit exported it (``edgekit_spec.json`` appended
to the flatbuffer), otherwise it is inferred from the input/output signature of well-known
third-party models (SSD with ``TFLite_Detection_PostProcess``, YOLOv8-style heads, MoveNet
SinglePose, PoseNet, classifiers). Results are in normalized coordinates of the original frame.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.artifact import LABELS_NAME, parse_labels, read_embedded
from edgekit.core.types import COCO_KEYPOINT_NAMES, Classification, Detection, ModelSpec, Pose
from edgekit.errors import (
    EdgeTPUUnavailable,
    ModelLoadError,
    ModelOutputError,
    UnsupportedModelError,
)
from edgekit.runtime.input_domain import input_normalization
from edgekit.runtime.interpreter import (
    BackendInfo,
    cpu_sibling,
    interpreter_from_bytes,
    read_model_bytes,
)
from edgekit.runtime.metadata import ModelMetadata, read_metadata
from edgekit.runtime.preprocess import Preprocessor, dequantize

__all__ = [
    "Model",
    "Prediction",
    "assumed_labels",
    "infer_spec",
    "label_mismatch",
    "load_labels",
    "resolve_posenet_outputs",
    "resolve_ssd_outputs",
]

BACKGROUND_LABELS = frozenset({"???", "background", "__background__", "bg"})
DEFAULT_SCORE = {"detect": 0.5, "pose": 0.2, "classify": 0.0}
DEFAULT_MAX = {"detect": 100, "pose": 10, "classify": 5}


@dataclass(frozen=True, slots=True)
class Prediction:
    """What one image produced, in normalized coordinates of that image."""

    detections: tuple[Detection, ...] = ()
    poses: tuple[Pose, ...] = ()
    classes: tuple[Classification, ...] = ()


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


def _label_offset(labels: Sequence[str], num_classes: int | None) -> int:
    """Offset so that class ``c`` is named ``labels[c + offset]``."""
    if not labels:
        return 0
    if num_classes is not None:
        if len(labels) == num_classes - 1:  # 1001 outputs with 1000 names: output 0 = background
            return -1
        if len(labels) == num_classes + 1 and labels[0].strip().lower() in BACKGROUND_LABELS:
            return 1
        return 0
    return 1 if labels[0].strip().lower() in BACKGROUND_LABELS else 0


# --- output resolution (pure, over interpreter detail dicts) ---------------------------------


def _shape(detail: dict) -> tuple[int, ...]:
    return tuple(int(v) for v in detail["shape"])


def _name(detail: dict) -> str:
    return str(detail.get("name", ""))


def resolve_ssd_outputs(
    outputs: Sequence[dict], postprocess_op_outputs: Sequence[int] | None = None
) -> dict[str, int]:
    """Positions (in ``outputs``) of the boxes, classes, scores and count of a
    ``TFLite_Detection_PostProcess`` model.

    Decided, in order, by the op's own output tensor order (``postprocess_op_outputs``, tensor
    indices, when the interpreter exposes it), then by shape (boxes ``[1,N,4]``, count ``[1]``)
    and tensor names for classes vs scores (``class``/``score`` in the name, or the op's
    ``:1``/``:2`` suffixes), falling back to the documented order boxes, classes, scores, count.
    """
    if len(outputs) != 4:
        raise UnsupportedModelError(
            f"an SSD post-processed model has 4 outputs, found {len(outputs)}"
        )
    if postprocess_op_outputs is not None and len(postprocess_op_outputs) == 4:
        by_tensor = {int(d["index"]): i for i, d in enumerate(outputs)}
        if all(int(t) in by_tensor for t in postprocess_op_outputs):
            pos = [by_tensor[int(t)] for t in postprocess_op_outputs]
            return dict(zip(("boxes", "classes", "scores", "count"), pos, strict=True))
    shapes = [_shape(d) for d in outputs]
    boxes = [i for i, s in enumerate(shapes) if len(s) == 3 and s[-1] == 4]
    count = [i for i, s in enumerate(shapes) if int(np.prod(s)) == 1 and len(s) <= 2]
    if len(boxes) != 1 or len(count) != 1:
        raise UnsupportedModelError(
            f"outputs {shapes} are not the SSD post-process outputs (boxes [1,N,4], classes, scores, count [1])"
        )
    rest = [i for i in range(4) if i not in (boxes[0], count[0])]
    n = shapes[boxes[0]][1]
    if any(shapes[i] not in ((1, n), (n,)) for i in rest):
        raise UnsupportedModelError(f"SSD outputs {shapes}: classes and scores must be [1,{n}]")
    classes = scores = None
    for i in rest:
        lower = _name(outputs[i]).lower()
        if "class" in lower or "label" in lower:
            classes = i
        elif "score" in lower:
            scores = i
    if classes is None or scores is None or classes == scores:
        suffix = {i: _suffix(_name(outputs[i])) for i in rest}
        if all("detection_postprocess" in _name(outputs[i]).lower() for i in rest) and sorted(
            suffix.values()
        ) == [1, 2]:
            classes = next(i for i in rest if suffix[i] == 1)
            scores = next(i for i in rest if suffix[i] == 2)
        else:
            classes, scores = rest  # documented TF1 order: boxes, classes, scores, count
    return {"boxes": boxes[0], "classes": classes, "scores": scores, "count": count[0]}


def _suffix(name: str) -> int:
    m = re.search(r":(\d+)$", name)
    return int(m.group(1)) if m else 0


def resolve_posenet_outputs(outputs: Sequence[dict]) -> dict[str, int]:
    """Positions of PoseNet's heatmaps ``[1,H,W,K]``, short offsets ``[1,H,W,2K]`` and mid
    offsets ``[1,H,W,4(K-1)]`` (an optional fourth output, e.g. segmentation, is ignored)."""
    shapes = [_shape(d) for d in outputs]
    if len(outputs) not in (3, 4) or any(len(s) != 4 for s in shapes):
        raise UnsupportedModelError(f"outputs {shapes} are not PoseNet's (3 or 4 maps [1,H,W,C])")
    for hi, hs in enumerate(shapes):
        k = hs[3]
        if k < 2:
            continue
        short = [i for i, s in enumerate(shapes) if s[1:3] == hs[1:3] and s[3] == 2 * k]
        mid = [i for i, s in enumerate(shapes) if s[1:3] == hs[1:3] and s[3] == 4 * (k - 1)]
        if len(short) == 1 and len(mid) == 1 and hi not in short + mid:
            return {"heatmaps": hi, "short_offsets": short[0], "mid_offsets": mid[0]}
    raise UnsupportedModelError(f"outputs {shapes} are not PoseNet's heatmaps/short/mid offsets")


def _postprocess_op_outputs(interpreter: Any) -> list[int] | None:
    try:
        ops = interpreter._get_ops_details()
    except Exception:  # private API; absent or different in some backends
        return None
    for op in ops:
        if op.get("op_name") == "TFLite_Detection_PostProcess":
            return [int(t) for t in op["outputs"]]
    return None


# --- spec inference --------------------------------------------------------------------------


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
    ishape = _shape(inp)
    if len(ishape) != 4 or ishape[3] not in (1, 3):
        raise UnsupportedModelError(f"input {list(ishape)} is not an image [1,H,W,3]")
    input_size = (ishape[1], ishape[2])
    shapes = [_shape(d) for d in output_details]
    labels = tuple(labels)
    params: dict[str, Any] = {}
    if (
        len(shapes) == 4
        and sum(len(s) == 3 and s[-1] == 4 for s in shapes) == 1
        and any(int(np.prod(s)) == 1 for s in shapes)
    ):
        task, decoder, mode = "detect", "ssd_postprocess", "resize"
        params["outputs"] = resolve_ssd_outputs(output_details, postprocess_op_outputs)
        params["label_offset"] = _label_offset(labels, None)
    elif len(shapes) == 1 and shapes[0] == (1, 1, 17, 3):
        task, decoder, mode = "pose", "movenet", "letterbox"
    elif len(shapes) in (3, 4) and all(len(s) == 4 for s in shapes):
        task, decoder, mode = "pose", "posenet", "letterbox"
        params["outputs"] = resolve_posenet_outputs(output_details)
        h = shapes[params["outputs"]["heatmaps"]][1]
        params["output_stride"] = _output_stride(input_size[0], h)
    elif len(shapes) == 1 and (
        len(shapes[0]) == 2 or (len(shapes[0]) == 4 and shapes[0][1:3] == (1, 1))
    ):
        task, decoder, mode = "classify", "classify", "resize"
        num = shapes[0][-1]
        params["label_offset"] = _label_offset(labels, num)
    elif len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][0] == 1 and min(shapes[0][1:]) >= 5:
        if shapes[0][2] == 56 and shapes[0][1] <= 10:
            raise UnsupportedModelError("MoveNet MultiPose ([1,6,56]) is not supported")
        task, decoder, mode = "detect", "yolo", "letterbox"
        params["label_offset"] = 0
    else:
        raise UnsupportedModelError(
            f"cannot tell what kind of model this is from its outputs {[list(s) for s in shapes]} "
            "(known: SSD post-process, YOLOv8 [1,4+C,N], MoveNet [1,1,17,3], PoseNet, classifier [1,N])"
        )
    return ModelSpec(
        task=task,
        decoder=decoder,
        input_size=input_size,
        input_dtype=np.dtype(inp["dtype"]).name,
        normalization=input_normalization(inp, decoder, meta.normalization),
        resize_mode=mode,
        labels=labels,
        decoder_params=params,
        keypoint_names=COCO_KEYPOINT_NAMES if task == "pose" else (),
        name=name,
    )


# --- labels of third-party models ------------------------------------------------------------

ASSUMED_COCO80 = "assumed COCO-80 (an 80-class YOLO head without labels)"


def _num_classes(spec: ModelSpec, output_details: Sequence[dict]) -> int | None:
    """How many classes a YOLO head or classifier outputs (``None`` for other decoders)."""
    if len(output_details) != 1:
        return None
    shape = _shape(output_details[0])
    if spec.decoder == "yolo" and len(shape) == 3:
        extra = 5 if spec.decoder_params.get("has_objectness") else 4
        named = len(spec.labels) - int(spec.decoder_params.get("label_offset", 0))
        if spec.labels and named + extra in shape[1:]:
            return named  # the axis the decoder will read as channels (to_channels_first)
        channels = min(shape[1:]) if min(shape[1:]) > extra else max(shape[1:])
        return channels - extra
    if spec.decoder == "classify" and shape:
        return shape[-1]
    return None


def assumed_labels(spec: ModelSpec, output_details: Sequence[dict]) -> tuple[str, ...]:
    """The COCO-80 names for a YOLO head with 80 classes and no labels (what such third-party
    models almost always are: Ultralytics' COCO detectors); ``()`` otherwise."""
    if spec.labels or spec.decoder != "yolo" or _num_classes(spec, output_details) != 80:
        return ()
    from edgekit.data.dataset import COCO80_NAMES

    return COCO80_NAMES


def label_mismatch(spec: ModelSpec, output_details: Sequence[dict]) -> str | None:
    """A warning when the labels do not name exactly the classes the model outputs."""
    n = _num_classes(spec, output_details)
    if n is None or not spec.labels:
        return None
    named = len(spec.labels) - int(spec.decoder_params.get("label_offset", 0))
    if named == n:
        return None
    more = (
        "classes past the last label print without a name" if named < n else "extra labels unused"
    )
    return f"{len(spec.labels)} labels for {n} output classes ({more})"


def _output_stride(input_h: int, map_h: int) -> int:
    if map_h > 1 and (input_h - 1) % (map_h - 1) == 0:
        return (input_h - 1) // (map_h - 1)  # PoseNet's odd sizes: 481 = 30 * 16 + 1
    return max(1, round(input_h / map_h))


def _complete_spec(spec: ModelSpec, output_details: Sequence[dict], op_outputs: Any) -> ModelSpec:
    """Fill what an embedded spec may leave out: output positions, output stride."""
    params = dict(spec.decoder_params)
    if spec.decoder == "ssd_postprocess" and ("outputs" not in params or op_outputs):
        # The post-process op's own output order is authoritative over positions in the spec.
        params["outputs"] = resolve_ssd_outputs(output_details, op_outputs)
    if spec.decoder == "posenet" and "outputs" not in params:
        params["outputs"] = resolve_posenet_outputs(output_details)
    if spec.decoder == "posenet" and "output_stride" not in params:
        h = _shape(output_details[params["outputs"]["heatmaps"]])[1]
        params["output_stride"] = _output_stride(spec.input_size[0], h)
    return dataclasses.replace(spec, decoder_params=params)


# --- the model -------------------------------------------------------------------------------


class Model:
    """A ready-to-run model. Build with :meth:`Model.load`."""

    def __init__(
        self,
        interpreter: Any,
        spec: ModelSpec,
        *,
        backend: BackendInfo,
        path: Path | None = None,
        metadata: ModelMetadata | None = None,
        labels_source: str = "",
        warnings: Sequence[str] = (),
    ) -> None:
        self.interpreter = interpreter
        self.spec = spec
        self.backend = backend
        self.path = path
        self.metadata = metadata or ModelMetadata()
        self.labels_source = labels_source
        self.warnings = tuple(warnings)
        self.input_details = interpreter.get_input_details()
        self.output_details = interpreter.get_output_details()
        if len(self.input_details) != 1:
            raise UnsupportedModelError(
                f"{self.name}: expected one image input, found {len(self.input_details)}"
            )
        detail = self.input_details[0]
        self._input_index = int(detail["index"])
        self._output_indices = [int(d["index"]) for d in self.output_details]
        self._output_quant = [
            (float(d["quantization"][0]), int(d["quantization"][1])) for d in self.output_details
        ]
        fill = int(
            spec.decoder_params.get("pad_value", 114 if spec.decoder.startswith("yolo") else 0)
        )
        try:
            self.preprocessor = Preprocessor.for_input(
                detail, normalization=spec.normalization, resize_mode=spec.resize_mode, fill=fill
            )
        except ValueError as exc:
            raise UnsupportedModelError(f"{self.name}: {exc}") from None
        self._decode = _decoder(spec)

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | bytes,
        *,
        backend: str | None = None,
        threads: int | None = None,
        labels: str | os.PathLike[str] | Sequence[str] | None = None,
        delegate_loader: Callable[[str], Any] | None = None,
        resize_mode: str | None = None,
        importer: Callable[[str], Any] = importlib.import_module,
        edgetpu_fallback: bool = False,
        log_warnings: bool = True,
    ) -> Model:
        """Load a ``.tflite`` model (path or bytes) and work out how to feed and decode it.

        ``labels`` (a file with one label per line or ``id name`` lines, or a list) overrides the
        labels embedded in the model; ``resize_mode`` ("resize"/"letterbox") overrides the spec's.
        ``edgetpu_fallback``: when ``x_edgetpu.tflite`` cannot get its Edge TPU delegate and
        ``x.tflite`` lies next to it, warn once (logger ``edgekit.runtime.model``) and load that
        CPU model instead of raising :class:`EdgeTPUUnavailable`.

        Labels come from ``labels``, else edgekit's embedded spec or ``labelmap.txt``, else the
        model's own metadata (Ultralytics names, a TFLite Support label file), else the COCO-80
        names for an 80-class YOLO head (:attr:`labels_source` says which). What the metadata
        held but could not be used, and labels that do not match the outputs, end up in
        :attr:`warnings`, each also logged (logger ``edgekit.runtime.model``) unless
        ``log_warnings`` is false.
        """
        data, name, p = read_model_bytes(path)
        try:
            interpreter, info = interpreter_from_bytes(
                data,
                name,
                p,
                backend=backend,
                threads=threads,
                delegate_loader=delegate_loader,
                importer=importer,
            )
        except EdgeTPUUnavailable as exc:
            sibling = cpu_sibling(p) if edgetpu_fallback else None
            if sibling is None:
                raise
            logging.getLogger(__name__).warning(
                "%s; running the CPU model %s instead", exc.args[0], sibling
            )
            return cls.load(
                sibling,
                backend=backend,
                threads=threads,
                labels=labels,
                resize_mode=resize_mode,
                importer=importer,
                log_warnings=log_warnings,
            )
        try:
            embedded = read_embedded(data)
        except ValueError as exc:
            raise ModelLoadError(f"{name}: embedded edgekit spec is malformed ({exc})") from None
        metadata = read_metadata(data) if embedded.spec is None else ModelMetadata()
        warnings = list(metadata.warnings)
        if labels is not None:
            label_list, labels_source = load_labels(labels), _labels_source_of(labels)
        elif embedded.labels:
            label_list = embedded.labels
            spec_labels = embedded.spec is not None and bool(embedded.spec.labels)
            labels_source = "edgekit spec" if spec_labels else f"{LABELS_NAME} (appended)"
        else:
            label_list, labels_source = metadata.labels, metadata.labels_source
        outputs = interpreter.get_output_details()
        op_outputs = _postprocess_op_outputs(interpreter)
        stem = p.stem if p is not None else ""
        try:
            if embedded.spec is not None:
                spec = embedded.spec
                if labels is not None or (label_list and not spec.labels):
                    spec = dataclasses.replace(spec, labels=label_list)
                spec = _complete_spec(spec, outputs, op_outputs)
            else:
                spec = infer_spec(
                    interpreter.get_input_details(),
                    outputs,
                    labels=label_list,
                    postprocess_op_outputs=op_outputs,
                    name=stem,
                    metadata=metadata,
                )
        except UnsupportedModelError as exc:
            raise UnsupportedModelError(f"{name}: {exc}") from None
        assumed = assumed_labels(spec, outputs)
        if assumed:
            spec, labels_source = dataclasses.replace(spec, labels=assumed), ASSUMED_COCO80
        warnings += _consistency_warnings(spec, outputs, metadata)
        if resize_mode is not None:
            if resize_mode not in ("resize", "letterbox"):
                raise ModelLoadError(
                    f"resize_mode must be 'resize' or 'letterbox', got {resize_mode!r}"
                )
            spec = dataclasses.replace(spec, resize_mode=resize_mode)
        if not spec.name and stem:
            spec = dataclasses.replace(spec, name=stem)
        if log_warnings:
            for line in warnings:
                logging.getLogger(__name__).warning("%s: %s", name, line)
        return cls(
            interpreter,
            spec,
            backend=info,
            path=p,
            metadata=metadata,
            labels_source=labels_source if spec.labels else "",
            warnings=warnings,
        )

    # --- properties -----------------------------------------------------------------------
    @property
    def display_name(self) -> str:
        """The model's file path (or name) as error messages show it."""
        return str(self.path) if self.path is not None else self.name

    @property
    def name(self) -> str:
        return self.spec.name or (self.path.stem if self.path else "model")

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def input_size(self) -> tuple[int, int]:
        return self.preprocessor.input_hw

    def __repr__(self) -> str:
        return (
            f"Model({self.name!r}, task={self.spec.task}, decoder={self.spec.decoder}, "
            f"input={self.input_size}, backend={self.backend.name}, threads={self.backend.threads})"
        )

    # --- the three stages -----------------------------------------------------------------
    def preprocess(self, image_rgb: np.ndarray) -> tuple[np.ndarray, Any]:
        """RGB uint8 image -> (input tensor ``[1,H,W,C]``, :class:`~edgekit.core.letterbox.Transform`)."""
        return self.preprocessor(image_rgb)

    def invoke(self, input_tensor: np.ndarray) -> list[np.ndarray]:
        """Run the interpreter; returns the raw (possibly quantized) outputs in output order.

        An interpreter failure is a :class:`ModelLoadError` naming the model."""
        it = self.interpreter
        try:
            it.set_tensor(self._input_index, input_tensor)
            it.invoke()
            return [it.get_tensor(i) for i in self._output_indices]
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[:1] or [type(exc).__name__]
            raise ModelLoadError(
                f"{self.display_name}: the interpreter failed: {first[0]}"
            ) from exc

    def dequantize(self, outputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Raw outputs -> float32 (integer outputs dequantized with their scale/zero point)."""
        return [dequantize(o, s, z) for o, (s, z) in zip(outputs, self._output_quant, strict=True)]

    def postprocess(
        self,
        outputs: Sequence[np.ndarray],
        transform: Any,
        *,
        score_threshold: float | None = None,
        iou_threshold: float | None = None,
        max_results: int | None = None,
    ) -> Prediction:
        """Decode raw outputs and map results to normalized coordinates of the original frame."""
        params = self.spec.decoder_params
        task = self.spec.task
        score = (
            score_threshold
            if score_threshold is not None
            else float(params.get("score_threshold", DEFAULT_SCORE[task]))
        )
        iou = (
            iou_threshold if iou_threshold is not None else float(params.get("iou_threshold", 0.5))
        )
        limit = (
            max_results
            if max_results is not None
            else int(params.get("max_results", DEFAULT_MAX[task]))
        )
        try:
            result = self._decode(self, self.dequantize(outputs), score, iou, limit)
        except (ValueError, IndexError, KeyError, TypeError, ArithmeticError) as exc:
            raise self._output_error(exc) from exc
        if task == "detect":
            return Prediction(detections=_map_detections(result, transform))
        if task == "pose":
            poses = [p for p in result if p.score >= score][:limit]
            return Prediction(poses=tuple(_map_pose(p, transform) for p in poses))
        return Prediction(classes=tuple(result))

    def predict(self, image_rgb: np.ndarray, **kwargs: Any) -> Prediction:
        """preprocess -> invoke -> postprocess (keyword arguments go to :meth:`postprocess`)."""
        tensor, transform = self.preprocess(image_rgb)
        return self.postprocess(self.invoke(tensor), transform, **kwargs)

    def check(self) -> None:
        """Run one blank frame through the model and its decoder, so that outputs the decoder
        cannot read fail now (:class:`~edgekit.errors.ModelOutputError`), before any camera
        or video is opened, rather than at the first frame."""
        h, w = self.input_size
        self.predict(np.full((h, w, 3), 114, np.uint8))

    def _output_error(self, exc: BaseException) -> ModelOutputError:
        """``exc`` raised while decoding, as one line naming the model and the output."""
        if isinstance(exc, KeyError):
            text = f"missing {exc.args[0]!r}" if exc.args else "missing key"
        else:
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        n = len(self.output_details)
        roles = {k: i for k, i in _output_roles(self.spec, n).items() if 0 <= i < n}
        named = {i for role, i in roles.items() if re.search(rf"\b{re.escape(role)}\b", text)}
        picks = sorted(named) if len(named) == 1 else sorted(set(roles.values()) or range(n))
        which = ", ".join(_describe_output(i, self.output_details[i]) for i in picks)
        noun = "output" if len(picks) == 1 else "outputs"
        return ModelOutputError(
            f"{self.display_name}: cannot decode {noun} {which} with the {self.spec.decoder} "
            f"decoder: {text}"
        )


def _output_roles(spec: ModelSpec, n: int) -> dict[str, int]:
    """Role -> output position for the decoder's named outputs (all outputs when unknown)."""
    pos = spec.decoder_params.get("outputs")
    if isinstance(pos, dict) and pos:
        return {str(k): v for k, v in pos.items() if isinstance(v, int)}
    return {"output": 0} if n == 1 else {f"output {i}": i for i in range(n)}


def _describe_output(i: int, detail: dict) -> str:
    dtype = np.dtype(detail.get("dtype", np.float32)).name
    return f"{i} {_name(detail)!r} {list(_shape(detail))} {dtype}"


def _labels_source_of(labels: str | os.PathLike[str] | Sequence[str]) -> str:
    return f"label file {labels}" if isinstance(labels, (str, os.PathLike)) else "given"


def _consistency_warnings(
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


# --- decoding --------------------------------------------------------------------------------

_Decode = Callable[[Model, list, float, float, int], list]


def _decoder(spec: ModelSpec) -> _Decode:
    table: dict[str, _Decode] = {
        "ssd_postprocess": _decode_ssd_postprocess,
        "ssd_raw": _decode_ssd_raw,
        "yolo": _decode_yolo,
        "yolo_nms": _decode_yolo_nms,
        "movenet": _decode_movenet,
        "posenet": _decode_posenet,
        "classify": _decode_classify,
    }
    if spec.decoder not in table:
        raise UnsupportedModelError(f"unknown decoder {spec.decoder!r} (known: {', '.join(table)})")
    return table[spec.decoder]


def _decode_ssd_postprocess(m: Model, outs: list, score: float, iou: float, limit: int) -> list:
    from edgekit.runtime.decoders import ssd

    pos = m.spec.decoder_params["outputs"]
    return ssd.decode_postprocessed(
        outs[pos["boxes"]],
        outs[pos["classes"]],
        outs[pos["scores"]],
        outs[pos["count"]],
        score_threshold=score,
        labels=m.spec.labels,
        label_offset=int(m.spec.decoder_params.get("label_offset", 0)),
        max_detections=limit,
    )


def _ssd_raw_outputs(m: Model) -> tuple[int, int]:
    pos = m.spec.decoder_params.get("outputs")
    if pos:
        return int(pos["box_encodings"]), int(pos["class_scores"])
    shapes = [_shape(d) for d in m.output_details]
    boxes = [i for i, s in enumerate(shapes) if s[-1] == 4]
    if len(shapes) != 2 or len(boxes) != 1:
        raise UnsupportedModelError(
            f"{m.name}: ssd_raw needs box encodings [1,A,4] and class scores [1,A,C], got {shapes}"
        )
    return boxes[0], 1 - boxes[0]


def _anchors(m: Model) -> np.ndarray:
    if "_anchors" in m.__dict__:
        return m.__dict__["_anchors"]
    from edgekit.core.anchors import anchors_from_params

    try:
        anchors = anchors_from_params(m.spec.decoder_params)
    except (ValueError, TypeError) as exc:
        raise UnsupportedModelError(f"{m.name}: {exc}") from None
    m.__dict__["_anchors"] = anchors
    return anchors


def _decode_ssd_raw(m: Model, outs: list, score: float, iou: float, limit: int) -> list:
    from edgekit.runtime.decoders import ssd

    params = m.spec.decoder_params
    bi, si = _ssd_raw_outputs(m)
    kwargs = {
        k: params[k]
        for k in ("scales", "has_background", "scores_are_logits", "activation", "class_agnostic")
        if k in params
    }
    return ssd.decode_raw(
        outs[bi],
        outs[si],
        _anchors(m),
        score_threshold=score,
        iou_threshold=iou,
        max_detections=limit,
        labels=m.spec.labels,
        label_offset=int(params.get("label_offset", 0)),
        **kwargs,
    )


def _decode_yolo(m: Model, outs: list, score: float, iou: float, limit: int) -> list:
    from edgekit.runtime.decoders import yolo

    pred = outs[0][0] if outs[0].ndim == 3 else outs[0]
    return yolo.decode(
        pred,
        input_size=m.spec.input_size,
        score_threshold=score,
        iou_threshold=iou,
        max_detections=limit,
        labels=m.spec.labels,
        label_offset=int(m.spec.decoder_params.get("label_offset", 0)),
        class_agnostic=bool(m.spec.decoder_params.get("class_agnostic", False)),
        has_objectness=bool(m.spec.decoder_params.get("has_objectness", False)),
    )


def _decode_yolo_nms(m: Model, outs: list, score: float, iou: float, limit: int) -> list:
    from edgekit.runtime.decoders import yolo

    pos = m.spec.decoder_params.get("outputs") or _named_outputs(
        m.output_details, ("boxes", "scores", "classes", "count")
    )
    return yolo.decode_nms(
        outs[pos["boxes"]],
        outs[pos["scores"]],
        outs[pos["classes"]],
        outs[pos["count"]],
        box_format=str(m.spec.decoder_params.get("box_format", "yxyx")),
        input_size=m.spec.input_size,
        score_threshold=score,
        max_detections=limit,
        labels=m.spec.labels,
        label_offset=int(m.spec.decoder_params.get("label_offset", 0)),
    )


def _named_outputs(details: Sequence[dict], keys: Sequence[str]) -> dict[str, int]:
    words = {
        "boxes": ("box",),
        "scores": ("score",),
        "classes": ("class",),
        "count": ("count", "num"),
    }
    found: dict[str, int] = {}
    for key in keys:
        hits = [
            i
            for i, d in enumerate(details)
            if any(w in _name(d).lower() for w in words.get(key, (key,)))
        ]
        if len(hits) != 1:
            names = [_name(d) for d in details]
            raise UnsupportedModelError(f"cannot tell which output is {key!r} from names {names}")
        found[key] = hits[0]
    return found


def _decode_movenet(m: Model, outs: list, score: float, iou: float, limit: int) -> list:
    from edgekit.runtime.decoders import movenet

    return [movenet.decode(outs[0])]


def _decode_posenet(m: Model, outs: list, score: float, iou: float, limit: int) -> list:
    from edgekit.runtime.decoders import posenet

    params = m.spec.decoder_params
    pos = params["outputs"]
    return posenet.decode(
        outs[pos["heatmaps"]][0],
        outs[pos["short_offsets"]][0],
        outs[pos["mid_offsets"]][0],
        output_stride=int(params["output_stride"]),
        max_poses=limit,
        score_threshold=float(params.get("part_score_threshold", 0.5)),
        min_pose_score=score,
        nms_radius=float(params.get("nms_radius", 20.0)),
        input_size=m.spec.input_size,
    )


def _decode_classify(m: Model, outs: list, score: float, iou: float, limit: int) -> list:
    from edgekit.runtime.decoders import classify

    return classify.decode(
        outs[0].reshape(-1),
        top_k=limit,
        score_threshold=score,
        labels=m.spec.labels,
        label_offset=int(m.spec.decoder_params.get("label_offset", 0)),
        apply_softmax=bool(m.spec.decoder_params.get("softmax", False)),
    )


# --- mapping to the frame --------------------------------------------------------------------


def _map_detections(dets: Sequence[Detection], transform: Any) -> tuple[Detection, ...]:
    if not dets:
        return ()
    boxes = transform.boxes_to_frame(np.array([d.box for d in dets], dtype=np.float64))
    return tuple(
        dataclasses.replace(d, box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])))
        for d, b in zip(dets, boxes.tolist(), strict=True)
    )


def _map_pose(pose: Pose, transform: Any) -> Pose:
    from edgekit.core.types import Keypoint

    xy = transform.points_to_frame(np.array([(k.x, k.y) for k in pose.keypoints], dtype=np.float64))
    kps = tuple(
        Keypoint(float(x), float(y), k.score)
        for (x, y), k in zip(xy.tolist(), pose.keypoints, strict=True)
    )
    box = None
    if pose.box is not None:
        b = transform.boxes_to_frame(np.array([pose.box], dtype=np.float64))[0]
        box = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
    return Pose(kps, pose.score, box)
