"""Small immutable result types and the model spec. numpy only.

Coordinates inside edgekit are normalized ``xyxy`` in ``[0, 1]`` of the *original frame*;
conversion to pixels happens only at the edges (JSONL, overlay) via ``to_pixels``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

Box = tuple[float, float, float, float]

COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

#: The 80 COCO detection classes, in the order YOLO-format COCO datasets number them (0..79).
COCO80_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

#: The original COCO category id (1..90, with gaps) of each of the 80 classes above.
COCO80_CATEGORY_IDS: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90,
)  # fmt: skip

TASKS = ("detect", "pose", "classify")

#: The timed stages of a frame's route, in the order they happen. Each name has one meaning
#: wherever it appears (milliseconds: ``FrameResult.timings``, the loop's and the bench's
#: statistics, JSON lines, the preview); a report shows the ones it measured, in this order.
#:
#: - ``capture``: the source producing the frame (read + decode + colour conversion);
#: - ``wait``: from the frame being captured to the step starting on it (the loop's queues);
#: - ``preprocess``: resize/letterbox + quantize into the input tensor;
#: - ``invoke``: the interpreter;
#: - ``postprocess``: dequantize + decode + map the results to the frame;
#: - ``track``: the tracker (``--track``);
#: - ``step``: the whole ``step(frame)`` call (preprocess + invoke + postprocess [+ track]);
#: - ``total``: a result's latency, from the frame in hand to its result being ready: in the
#:   loop from the start of the frame's capture (capture + wait + step), in ``edgekit bench``
#:   (a frame already in memory, run back to back) preprocess + invoke + postprocess;
#: - ``render``: drawing the overlay, once for the sinks that show it (the loop);
#: - ``write``: handing the result to every sink (the loop).
STAGES: tuple[str, ...] = (
    "capture",
    "wait",
    "preprocess",
    "invoke",
    "postprocess",
    "track",
    "step",
    "total",
    "render",
    "write",
)


def pick_stages(*names: str) -> tuple[str, ...]:
    """``names`` in :data:`STAGES` order (what a report shows); ``ValueError`` for a name that
    is not a stage."""
    unknown = [n for n in names if n not in STAGES]
    if unknown:
        raise ValueError(f"not stages: {unknown} (the stages are {', '.join(STAGES)})")
    return tuple(s for s in STAGES if s in names)


@dataclass(frozen=True, slots=True)
class Frame:
    """One RGB uint8 image (H, W, 3) and where/when it came from.

    ``lores`` is an optional smaller RGB copy of the same view (picamera2's low-resolution
    stream) for a model to run on instead of ``image``; results stay normalized, so they map
    onto ``image`` unchanged. ``inference_image`` picks it when present.
    """

    image: np.ndarray
    index: int
    timestamp_ns: int
    source: str
    lores: np.ndarray | None = None

    @property
    def inference_image(self) -> np.ndarray:
        """The image a model should run on: ``lores`` when the source provides one."""
        return self.image if self.lores is None else self.lores

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True, slots=True)
class Detection:
    """A box (normalized xyxy of the original frame), its class and score."""

    box: Box
    class_id: int
    score: float
    label: str = ""
    track_id: int | None = None


@dataclass(frozen=True, slots=True)
class Keypoint:
    """A keypoint in normalized (x, y) of the original frame and its confidence."""

    x: float
    y: float
    score: float


@dataclass(frozen=True, slots=True)
class Pose:
    """A person's keypoints (COCO order unless the spec says otherwise), score and optional box."""

    keypoints: tuple[Keypoint, ...]
    score: float
    box: Box | None = None


@dataclass(frozen=True, slots=True)
class Classification:
    class_id: int
    score: float
    label: str = ""


@dataclass(frozen=True, slots=True)
class FrameResult:
    """Everything one frame produced, with per-stage timings in milliseconds."""

    frame: Frame
    detections: tuple[Detection, ...] = ()
    poses: tuple[Pose, ...] = ()
    classes: tuple[Classification, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Sink(Protocol):
    """Where the loop hands each result (:func:`edgekit.loop.run`).

    - ``name``: which output it is (``"jsonl out.jsonl"``), in warnings and the run's summary;
    - ``wants_image``: True for a sink that shows the annotated frame; the loop draws it once
      per frame for all of them and passes it as ``image`` (None for the others);
    - ``stop_requested``: set by the sink when the user asks to stop (a window closed); the
      loop stops after the frame;
    - ``write(result, image)``: an ``OSError`` or :class:`~edgekit.errors.SinkError` disables
      the sink (see :func:`edgekit.loop.run`);
    - ``close()``: flush and release; called once, when the run ends.

    :class:`edgekit.io.sinks.BaseSink` implements all of it; the loop also takes an object with
    ``write(result)`` and ``close()`` only (the rest then default: its repr, False, False).
    """

    name: str
    wants_image: bool
    stop_requested: bool

    def write(self, result: FrameResult, image: np.ndarray | None = None) -> None: ...

    def close(self) -> None: ...


def to_pixels(box: Box, width: int, height: int) -> tuple[float, float, float, float]:
    """Normalized xyxy -> pixel xyxy of a ``width`` x ``height`` frame."""
    x0, y0, x1, y1 = box
    return (x0 * width, y0 * height, x1 * width, y1 * height)


@dataclass(frozen=True)
class ModelSpec:
    """What a model is and how to feed and decode it. Embedded in edgekit exports (JSON).

    - ``task``: "detect" | "pose" | "classify".
    - ``decoder``: which runtime decoder reads the outputs: a key of the one table of them,
      :data:`edgekit.runtime.decoders.DECODERS` (e.g. "ssd_postprocess", "yolo", "movenet").
    - ``input_size``: (height, width) of the model input.
    - ``input_dtype``: "uint8" | "int8" | "float32".
    - ``normalization``: (mean, std) per channel applied to 0..255 RGB before quantization,
      i.e. ``x = (pixel - mean) / std``. (127.5, 127.5) maps to [-1, 1]; (0, 1) keeps 0..255.
    - ``resize_mode``: "resize" (stretch) or "letterbox" (keep aspect, pad).
    - ``labels``: class names, index = class id the model outputs.
    - ``decoder_params``: decoder-specific values (anchors, scales, strides, thresholds...).
    """

    task: str
    decoder: str
    input_size: tuple[int, int]
    input_dtype: str = "uint8"
    normalization: tuple[float, float] = (0.0, 1.0)
    resize_mode: str = "resize"
    labels: tuple[str, ...] = ()
    decoder_params: dict[str, Any] = field(default_factory=dict)
    keypoint_names: tuple[str, ...] = ()
    name: str = ""
    version: str = ""

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Build from a parsed JSON dict; unknown keys are ignored, wrong types raise ValueError."""
        if not isinstance(data, dict):
            raise ValueError("model spec must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for required in ("task", "decoder", "input_size"):
            if required not in kwargs:
                raise ValueError(f"model spec lacks {required!r}")
        if kwargs["task"] not in TASKS:
            raise ValueError(f"model spec task {kwargs['task']!r} is not one of {TASKS}")
        size = kwargs["input_size"]
        if not (
            isinstance(size, (list, tuple))
            and len(size) == 2
            and all(isinstance(v, int) and v > 0 for v in size)
        ):
            raise ValueError(
                f"model spec input_size {size!r} must be [height, width] of positive ints"
            )
        kwargs["input_size"] = (int(size[0]), int(size[1]))
        norm = kwargs.get("normalization", (0.0, 1.0))
        if (
            not (
                isinstance(norm, (list, tuple))
                and len(norm) == 2
                and all(isinstance(v, (int, float)) for v in norm)
            )
            or norm[1] == 0
        ):
            raise ValueError(f"model spec normalization {norm!r} must be [mean, std] with std != 0")
        kwargs["normalization"] = (float(norm[0]), float(norm[1]))
        for key in ("labels", "keypoint_names"):
            if key in kwargs:
                seq = kwargs[key]
                if not isinstance(seq, (list, tuple)) or not all(isinstance(s, str) for s in seq):
                    raise ValueError(f"model spec {key} must be a list of strings")
                kwargs[key] = tuple(seq)
        if not isinstance(kwargs.get("decoder_params", {}), dict):
            raise ValueError("model spec decoder_params must be an object")
        if kwargs.get("resize_mode", "resize") not in ("resize", "letterbox"):
            raise ValueError(
                f"model spec resize_mode {kwargs['resize_mode']!r} must be resize or letterbox"
            )
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        return cls.from_dict(json.loads(text))
