"""A corpus of small third-party-style ``.tflite`` models, made here with TensorFlow.

One tiny Keras model per family edgekit recognises (YOLO-style head, classifier, SSD with
``TFLite_Detection_PostProcess``, SSD raw heads with an edgekit spec, MoveNet, PoseNet), with
fixed hand-set weights so their outputs are smooth functions of the image (colour and
brightness of image cells: red/green/blue things), converted at several input quantizations:

- ``float``: the float twin;
- ``u8_pixel`` / ``i8_pixel``: calibrated on exactly the family's float domain, so raw pixels
  (``p`` or ``p - 128``) are what the model takes;
- ``u8_odd`` / ``i8_odd``: calibrated on a wider, asymmetric range, as third-party exporters do
  (``i8_odd`` is what Ultralytics' int8 exports get from ImageNet mean/std calibration: for a
  0..1 input, scale 0.0187 and zero point -14).

Used by tests (``corpus`` fixture in conftest.py, built lazily, cached in pytest's tmp dir) and
by ``tools/bench_third_party_int8.py``. Needs TensorFlow; import it only after
``pytest.importorskip("tensorflow")``.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgekit.core.artifact import flatbuffer_end
from edgekit.core.types import ModelSpec

#: (lo, hi) of the calibration range, as fractions of the float domain [a, b]: a + f * (b - a).
QUANTS: dict[str, tuple[str, tuple[float, float]] | None] = {
    "float": None,
    "u8_pixel": ("uint8", (0.0, 1.0)),
    "i8_pixel": ("int8", (0.0, 1.0)),
    "u8_odd": ("uint8", (-0.25, 1.1)),
    "i8_odd": ("int8", (-2.118, 2.64)),
}

#: The float domain of each family as (mean, std) of 0..255 pixels.
DOMAINS = {
    "yolo": (0.0, 255.0),
    "classify": (127.5, 127.5),
    "ssd": (127.5, 127.5),
    "movenet": (0.0, 1.0),
    "posenet": (127.5, 127.5),
}

COLOURS = ("red", "green", "blue")
CALIB_IMAGES = 12


def scene(rng: np.random.Generator, size: int, boxes: int = 4) -> np.ndarray:
    """An RGB uint8 test image: a plain background and a few saturated rectangles (and one pure
    black and one pure white pixel, so calibration sees the full pixel range)."""
    img = np.empty((size, size, 3), np.uint8)
    img[:] = rng.integers(40, 200, 3)
    palette = np.array(
        [(230, 25, 25), (25, 210, 40), (30, 40, 235), (245, 245, 245), (20, 20, 20)], np.uint8
    )
    for _ in range(boxes):
        h, w = (int(v) for v in rng.integers(size // 6, size // 2, 2))
        y, x = (int(v) for v in rng.integers(0, size - min(h, w), 2))
        img[y : y + h, x : x + w] = palette[rng.integers(0, len(palette))]
    img[0, 0], img[0, 1] = 0, 255
    return img


def _colour_weights(classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A 1x1 conv kernel (3 -> classes) and bias: class c fires where channel c % 3 dominates;
    not invariant to a shift of the input, so a wrong input domain changes the scores."""
    w = np.full((1, 1, 3, classes), -4.0, np.float32)
    for c in range(classes):
        w[0, 0, c % 3, c] = 10.0 - (c // 3) * 0.5
    return w, np.full((classes,), -3.0, np.float32)


def _const(value: np.ndarray):
    import keras

    return keras.initializers.Constant(value)


def yolo_head(size: int = 64, classes: int = 3, strides: Sequence[int] = (8, 16)):
    """YOLOv8-style ``[1, 4 + C, N]``: normalized cx, cy, w, h then sigmoid class scores.

    Boxes sit on the grid cells; their size grows with the cell's brightness. Float domain
    0..1 (pixels / 255), as Ultralytics exports."""
    import keras

    inp = keras.Input((size, size, 3))
    rows = []
    w, b = _colour_weights(classes)
    for stride in strides:
        g = size // stride
        pooled = keras.layers.AveragePooling2D(stride)(inp)
        scores = keras.layers.Conv2D(
            classes,
            1,
            activation="sigmoid",
            kernel_initializer=_const(w),
            bias_initializer=_const(b),
        )(pooled)
        bright = keras.layers.Conv2D(
            2,
            1,
            kernel_initializer=_const(np.full((1, 1, 3, 2), 1.0 / (3 * g), np.float32)),
            bias_initializer=_const(np.full((2,), 1.5 / g, np.float32)),
        )(pooled)  # w = h = (1.5 + mean) / g
        ys, xs = np.meshgrid((np.arange(g) + 0.5) / g, (np.arange(g) + 0.5) / g, indexing="ij")
        centres = np.stack([xs, ys], -1)[None].astype(np.float32)
        cxy = keras.layers.Lambda(lambda t, c=centres: t * 0.0 + c)(bright)
        cell = keras.layers.Concatenate()([cxy, bright, scores])
        rows.append(keras.layers.Reshape((g * g, 4 + classes))(cell))
    x = keras.layers.Concatenate(axis=1)(rows) if len(rows) > 1 else rows[0]
    return keras.Model(inp, keras.layers.Permute((2, 1), name="predictions")(x), name="yolo")


def classifier(size: int = 32, classes: int = 4):
    """``[1, C]`` softmax over colour classes (red, green, blue, bright); float domain -1..1."""
    import keras

    w = np.zeros((3, classes), np.float32)
    b = np.zeros((classes,), np.float32)
    for c in range(3):
        w[:, c] = -2.0
        w[c, c] = 4.0
    w[:, 3], b[3] = 1.5, 0.5
    inp = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(inp)
    x = keras.layers.Dense(classes, kernel_initializer=_const(w), bias_initializer=_const(b))(x)
    return keras.Model(inp, keras.layers.Softmax()(x), name="classifier")


SSD_ANCHORS = {
    "input_size": [64, 64],
    "feature_sizes": [[8, 8]],
    "min_scale": 0.25,
    "max_scale": 0.5,
    "aspect_ratios": [1.0],
    "reduce_boxes_in_lowest_layer": False,
}


def ssd_raw_heads(classes: int = 3):
    """SSD heads ``box_encodings [1, A, 4]`` and ``class_logits [1, A, C + 1]`` on an 8x8 grid
    (anchors :data:`SSD_ANCHORS`), and its edgekit spec (decoder ``ssd_raw``); domain -1..1."""
    import keras

    from edgekit.core.anchors import ssd_anchors

    per_cell = ssd_anchors(**SSD_ANCHORS).shape[0] // 64
    w, b = _colour_weights(classes)
    w, b = w / 2, b - 2.0  # inputs in -1..1: twice the spread of 0..1
    logits_w = np.zeros((1, 1, 3, per_cell * (classes + 1)), np.float32)
    logits_b = np.zeros((per_cell * (classes + 1),), np.float32)
    box_w = np.zeros((1, 1, 3, per_cell * 4), np.float32)
    for k in range(per_cell):
        base = k * (classes + 1)
        logits_w[..., base + 1 : base + 1 + classes] = w
        logits_b[base + 1 : base + 1 + classes] = b
        box_w[0, 0, :, 4 * k + 2 : 4 * k + 4] = 1.0  # th, tw grow with brightness
    inp = keras.Input((64, 64, 3))
    pooled = keras.layers.AveragePooling2D(8)(inp)
    boxes = keras.layers.Reshape((-1, 4), name="box_encodings")(
        keras.layers.Conv2D(per_cell * 4, 1, kernel_initializer=_const(box_w))(pooled)
    )
    logits = keras.layers.Reshape((-1, classes + 1), name="class_logits")(
        keras.layers.Conv2D(
            per_cell * (classes + 1),
            1,
            kernel_initializer=_const(logits_w),
            bias_initializer=_const(logits_b),
        )(pooled)
    )
    spec = ModelSpec(
        task="detect",
        decoder="ssd_raw",
        input_size=(64, 64),
        normalization=DOMAINS["ssd"],
        labels=COLOURS[:classes],
        decoder_params={
            "anchors": SSD_ANCHORS,
            "scales": [10.0, 10.0, 5.0, 5.0],
            "has_background": True,
            "scores_are_logits": True,
            "activation": "sigmoid",
            "output_names": ["box_encodings", "class_logits"],
        },
        name="ssd",
    )
    return keras.Model(inp, [boxes, logits], name="ssd"), spec


def movenet_like(size: int = 64):
    """MoveNet SinglePose's ``[1, 1, 17, 3]`` (y, x, score) from 4x4 cell colours; domain 0..255."""
    import keras

    rng = np.random.default_rng(7)
    w = (rng.normal(0.0, 1.0, (48, 51)) / (48 * 255.0)).astype(np.float32)
    inp = keras.Input((size, size, 3))
    x = keras.layers.Flatten()(keras.layers.AveragePooling2D(size // 4)(inp))
    x = keras.layers.Dense(51, activation="sigmoid", kernel_initializer=_const(w * 40))(x)
    return keras.Model(inp, keras.layers.Reshape((1, 17, 3))(x), name="movenet")


def posenet_like(size: int = 33):
    """PoseNet's heatmaps ``[1,3,3,17]``, short offsets ``[1,3,3,34]`` and mid offsets
    ``[1,3,3,64]`` at output stride 16; domain -1..1."""
    import keras

    keras.utils.set_random_seed(5)
    inp = keras.Input((size, size, 3))
    x = keras.layers.AveragePooling2D(16, padding="same")(inp)
    heat = keras.layers.Conv2D(17, 1, name="heatmaps")(x)
    short = keras.layers.Conv2D(34, 1, name="short_offsets")(x)
    mid = keras.layers.Conv2D(64, 1, name="mid_offsets")(x)
    return keras.Model(inp, [heat, short, mid], name="posenet")


# --- conversion ------------------------------------------------------------------------------


def calibration_normalization(
    domain: tuple[float, float], fractions: tuple[float, float]
) -> tuple[float, float]:
    """The (mean, std) that maps pixels 0..255 onto ``a + f * (b - a)`` for ``f`` in
    ``fractions``, where [a, b] is ``domain``'s float range."""
    mean, std = domain
    a, b = (0.0 - mean) / std, (255.0 - mean) / std
    lo, hi = a + fractions[0] * (b - a), a + fractions[1] * (b - a)
    s = 255.0 / (hi - lo)
    return (-lo * s, s)


def to_tflite(
    model, quant: str, images: Sequence[np.ndarray], domain: tuple[float, float]
) -> bytes:
    """Convert ``model`` (no in-graph NMS) as ``quant`` (a key of :data:`QUANTS`), calibrating
    on ``images`` mapped onto that quantization's range."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    q = QUANTS[quant]
    if q is not None:
        io_dtype, fractions = q
        mean, std = calibration_normalization(domain, fractions)

        def representative():
            for img in images:
                yield [((img.astype(np.float32) - mean) / std)[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = {"uint8": tf.uint8, "int8": tf.int8}[io_dtype]
        converter.inference_output_type = converter.inference_input_type
    return converter.convert()


def ssd_with_postprocess(quant: str, calib_dir: Path) -> bytes:
    """:func:`ssd_raw_heads` with ``TFLite_Detection_PostProcess`` inside (edgekit's exporter),
    spec stripped: a third-party SSD as the TF Object Detection API makes them."""
    import dataclasses

    from edgekit.export.nms import NMSConfig
    from edgekit.export.tflite import ExportConfig, convert

    model, spec = ssd_raw_heads()
    q = QUANTS[quant]
    if q is None:
        config = ExportConfig(format="float32", nms=True, nms_config=NMSConfig(max_detections=20))
    else:
        io_dtype, fractions = q
        spec = dataclasses.replace(
            spec, normalization=calibration_normalization(DOMAINS["ssd"], fractions)
        )
        config = ExportConfig(
            format="int8",
            io_dtype=io_dtype,
            nms=True,
            nms_config=NMSConfig(max_detections=20),
            calib_dir=calib_dir,
            calib_samples=CALIB_IMAGES,
        )
    flatbuffer, _ = convert(model, spec, config)
    return flatbuffer[: flatbuffer_end(flatbuffer)]


def with_ultralytics_metadata(
    flatbuffer: bytes, metadata: dict | str, name: str = "metadata.json"
) -> bytes:
    """``flatbuffer`` with a ZIP appended holding ``metadata`` (a dict written as JSON, or the
    text as given), as Ultralytics exports do."""
    text = json.dumps(metadata) if isinstance(metadata, dict) else metadata
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, text)
    return flatbuffer[: flatbuffer_end(flatbuffer)] + buf.getvalue()


def ultralytics_dict(names: Sequence[str], imgsz: int, task: str = "detect") -> dict:
    return {
        "description": "Ultralytics YOLOv8n model trained on coco.yaml",
        "author": "Ultralytics",
        "date": "2024-01-01T00:00:00",
        "version": "8.1.0",
        "license": "AGPL-3.0 License (https://ultralytics.com/license)",
        "docs": "https://docs.ultralytics.com",
        "stride": 32,
        "task": task,
        "batch": 1,
        "imgsz": [imgsz, imgsz],
        "names": {i: n for i, n in enumerate(names)},
        "args": {"batch": 1, "half": False, "int8": True, "nms": False},
    }


# --- comparing results -----------------------------------------------------------------------


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def detection_differences(
    ref: Sequence, got: Sequence, *, threshold: float, margin: float = 0.1, min_iou: float = 0.7
) -> list[str]:
    """Why ``got`` are not the same detections as ``ref`` (both predicted at a score threshold
    of ``threshold - margin`` or lower): every detection scoring ``threshold + margin`` or more
    on either side needs a partner of the same class with IoU >= ``min_iou`` and a score within
    ``margin``. Empty when they agree."""
    problems = []
    for name, mine, theirs in (("float", ref, got), ("quantized", got, ref)):
        for d in mine:
            if d.score < threshold + margin:
                continue
            partners = [
                o
                for o in theirs
                if o.class_id == d.class_id
                and box_iou(d.box, o.box) >= min_iou
                and abs(o.score - d.score) <= margin
            ]
            if not partners:
                box = ", ".join(f"{v:.2f}" for v in d.box)
                problems.append(f"{name} class {d.class_id} {d.score:.2f} [{box}] has no partner")
    return problems


# --- the corpus ------------------------------------------------------------------------------

#: family -> (task, builder, input size, quantizations made)
FAMILIES = {
    "yolo": ("detect", yolo_head, 64, ("float", "u8_pixel", "i8_pixel", "u8_odd", "i8_odd")),
    "classify": ("classify", classifier, 32, ("float", "u8_pixel", "u8_odd", "i8_odd")),
    "ssd": ("detect", None, 64, ("float", "i8_odd")),
    "movenet": ("pose", movenet_like, 64, ("float", "u8_pixel", "i8_odd")),
    "posenet": ("pose", posenet_like, 33, ("float", "u8_pixel")),
}


class Corpus:
    """Builds corpus models on first use and caches them as files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._calib: dict[int, list[np.ndarray]] = {}

    def images(self, size: int, n: int, seed: int) -> list[np.ndarray]:
        """``n`` test scenes of ``size`` x ``size``."""
        rng = np.random.default_rng(seed + size)
        return [scene(rng, size) for _ in range(n)]

    def calibration(self, size: int) -> list[np.ndarray]:
        """The calibration set: scenes plus an all-black and an all-white frame."""
        if size not in self._calib:
            flat = [np.full((size, size, 3), v, np.uint8) for v in (0, 255)]
            self._calib[size] = self.images(size, CALIB_IMAGES - 2, seed=0) + flat
        return self._calib[size]

    def calib_dir(self, size: int) -> Path:
        import cv2

        folder = self.root / f"calib_{size}"
        if not folder.is_dir():
            folder.mkdir()
            for i, img in enumerate(self.calibration(size)):
                cv2.imwrite(str(folder / f"{i:02d}.png"), img[:, :, ::-1])
        return folder

    def path(self, family: str, quant: str) -> Path:
        """The model file of ``family`` at ``quant`` (built the first time)."""
        out = self.root / f"{family}_{quant}.tflite"
        if out.is_file():
            return out
        _, builder, size, quants = FAMILIES[family]
        if quant not in quants:
            raise KeyError(f"the corpus has no {family} model at {quant}")
        if family == "ssd":
            data = ssd_with_postprocess(quant, self.calib_dir(size))
        else:
            data = to_tflite(builder(size), quant, self.calibration(size), DOMAINS[family])
        out.write_bytes(data)
        return out

    def ssd_raw(self) -> Path:
        """The SSD raw-heads model exported by edgekit (int8, uint8 I/O, spec embedded)."""
        out = self.root / "ssd_raw_int8.tflite"
        if not out.is_file():
            from edgekit.export.tflite import ExportConfig, export_model

            model, spec = ssd_raw_heads()
            export_model(
                model,
                spec,
                ExportConfig(
                    format="int8",
                    out=out,
                    calib_dir=self.calib_dir(64),
                    calib_samples=CALIB_IMAGES,
                ),
            )
        return out

    def yolo80(self) -> Path:
        """An 80-class YOLO head (float, 64x64, 256 candidates) without labels."""
        out = self.root / "yolo80_float.tflite"
        if not out.is_file():
            out.write_bytes(to_tflite(yolo_head(64, 80, (4,)), "float", (), DOMAINS["yolo"]))
        return out

    def scenes_dir(self, n: int = 3) -> Path:
        """A folder of ``n`` non-square test scenes (letterboxing and resizing both show)."""
        import cv2

        folder = self.root / f"scenes_{n}"
        if not folder.is_dir():
            folder.mkdir()
            rng = np.random.default_rng(99)
            for i in range(n):
                img = scene(rng, 96)[:, 8:88]  # 96 x 80
                cv2.imwrite(str(folder / f"{i:02d}.png"), img[:, :, ::-1])
        return folder

    def variant(self, name: str, data: bytes) -> Path:
        """Write a derived model (appended metadata, truncation...) next to the corpus."""
        out = self.root / name
        out.write_bytes(data)
        return out
