"""A loaded model: interpreter + spec + labels, with preprocess / invoke / postprocess.

The spec comes from the model itself when edgekit exported it (``edgekit_spec.json`` appended
to the flatbuffer), otherwise it is inferred from the input/output signature of well-known
third-party models (SSD with ``TFLite_Detection_PostProcess``, YOLOv8-style heads, MoveNet
SinglePose, PoseNet, classifiers): :mod:`edgekit.runtime.spec`. Outputs are read by the spec's
decoder (:data:`edgekit.runtime.decoders.DECODERS`). Results are in normalized coordinates of
the original frame.
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

from edgekit.core.artifact import LABELS_NAME, read_embedded
from edgekit.core.letterbox import detections_to_frame, pose_to_frame
from edgekit.core.types import Classification, Detection, ModelSpec, Pose
from edgekit.errors import (
    EdgeTPUUnavailable,
    ModelLoadError,
    ModelOutputError,
    UnsupportedModelError,
)
from edgekit.runtime.decoders import get_decoder
from edgekit.runtime.decoders.common import Thresholds, detail_name, detail_shape
from edgekit.runtime.interpreter import (
    BackendInfo,
    cpu_sibling,
    interpreter_from_bytes,
    read_model_bytes,
)
from edgekit.runtime.metadata import ModelMetadata, read_metadata
from edgekit.runtime.preprocess import Preprocessor, dequantize
from edgekit.runtime.spec import (
    ASSUMED_COCO80,
    assumed_labels,
    complete_spec,
    consistency_warnings,
    infer_spec,
    labels_source_of,
    load_labels,
    postprocess_op_outputs,
)

__all__ = ["Model", "Prediction"]

DEFAULT_SCORE = {"detect": 0.5, "pose": 0.2, "classify": 0.0}
DEFAULT_MAX = {"detect": 100, "pose": 10, "classify": 5}


@dataclass(frozen=True, slots=True)
class Prediction:
    """What one image produced, in normalized coordinates of that image."""

    detections: tuple[Detection, ...] = ()
    poses: tuple[Pose, ...] = ()
    classes: tuple[Classification, ...] = ()


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
        self._decode = get_decoder(spec.decoder).bind(spec, self.output_details, self.name)

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
            label_list, labels_source = load_labels(labels), labels_source_of(labels)
        elif embedded.labels:
            label_list = embedded.labels
            spec_labels = embedded.spec is not None and bool(embedded.spec.labels)
            labels_source = "edgekit spec" if spec_labels else f"{LABELS_NAME} (appended)"
        else:
            label_list, labels_source = metadata.labels, metadata.labels_source
        outputs = interpreter.get_output_details()
        op_outputs = postprocess_op_outputs(interpreter)
        stem = p.stem if p is not None else ""
        try:
            if embedded.spec is not None:
                spec = embedded.spec
                if labels is not None or (label_list and not spec.labels):
                    spec = dataclasses.replace(spec, labels=label_list)
                spec = complete_spec(spec, outputs, op_outputs)
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
        warnings += consistency_warnings(spec, outputs, metadata)
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
            result = self._decode(self.dequantize(outputs), Thresholds(score, iou, limit))
        except (ValueError, IndexError, KeyError, TypeError, ArithmeticError) as exc:
            raise self._output_error(exc) from exc
        if task == "detect":
            return Prediction(detections=detections_to_frame(result, transform))
        if task == "pose":
            poses = [p for p in result if p.score >= score][:limit]
            return Prediction(poses=tuple(pose_to_frame(p, transform) for p in poses))
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
    return f"{i} {detail_name(detail)!r} {list(detail_shape(detail))} {dtype}"
