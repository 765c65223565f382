"""Grad-CAM: which regions of an image drove a Keras classifier's or detector's prediction.

Grad-CAM (Selvaraju et al. 2017) weighs each channel of a convolutional feature map by the mean
gradient of a score with respect to it and keeps the positive part of the weighted sum:
``cam = relu(sum_k mean_ij(d score / d A_k[i, j]) * A_k)``. The map lives on the feature grid of
the model input; :func:`heatmap_to_frame` carries it back through the same resize/letterbox
:class:`~edgekit.core.letterbox.Transform` the runtime used, so it lines up with the original
image.

- Classifiers: the score is the pre-softmax logit of the chosen class (default the top-1); the
  feature map is the last 4-D map before the global pooling.
- Detectors (zoo SSDLite, ``ssd_raw``; zoo YOLO-tiny, ``yolo``): the image is decoded by the
  runtime's decoder, one detection is picked (the top one, or the K-th), the anchor/cell that
  produced it is found, and the score is that anchor's class logit; the feature map is the one of
  the scale whose head produced it. Detectors default to HiResCAM (gradient x activation per
  position, no spatial averaging): with averaged weights every object of the class, and the
  zero-padding border, light up; measured on a tiny trained SSD with two squares, Grad-CAM put
  about a third of the heat energy on the explained box, HiResCAM 0.92-1.0.

Needs the Keras checkpoint (gradients); TensorFlow is imported only inside the functions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import (
    DependencyMissing,
    ModelLoadError,
    SinkError,
    SourceError,
    UnsupportedModelError,
    UsageError,
)

__all__ = [
    "ExplainConfig",
    "Explanation",
    "explain",
    "explain_image",
    "feature_layer",
    "grad_cam",
    "heatmap_to_frame",
    "load_explainable",
    "overlay_heatmap",
]

Box = tuple[float, float, float, float]

# Per-scale class heads of the zoo detectors: (reshape layer pattern, layer whose input is the
# scale's feature map, offset of the first real class column in ``class_logits``).
_HEADS: dict[str, tuple[str, str]] = {
    "ssd_raw": (r"^class_head_(\d+)_reshape$", "class_head_{}_dw"),
    "yolo": (r"^head_p(\d+)_cls_reshape$", "head_p{}_cls_conv_dw"),
}
METHODS = ("gradcam", "hirescam")
_POOLING = ("GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten")


@dataclass(frozen=True)
class ExplainConfig:
    """What ``edgekit explain`` explains.

    ``model``: a ``.keras`` checkpoint, or a zoo model name (random weights, a smoke check;
    ``input_size`` then sets its input). ``target_class``: a label or a class id (default: the
    top-1 class, or for detectors any class). ``box``: detectors, index in the decoded list
    (0 = the best detection). ``out``: the PNG written (``None``: nothing written).
    """

    model: str | Path
    image: Path
    out: Path | None = None
    target_class: str | int | None = None
    layer: str | None = None
    box: int | None = None
    method: str | None = None
    alpha: float = 0.45
    input_size: int | None = None
    arch: str | None = None
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Explanation:
    """One Grad-CAM. ``heatmap`` is ``(H, W)`` float32 in [0, 1] at the original image's size;
    ``cam`` the raw map on the feature grid; ``box`` (detectors) the explained box in normalized
    xyxy of the image."""

    heatmap: np.ndarray
    cam: np.ndarray
    task: str
    class_id: int
    label: str
    score: float
    layer: str
    layer_shape: tuple[int, int, int]
    method: str = "gradcam"
    box: Box | None = None
    detection_index: int | None = None
    out: Path | None = None
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        """One line: what was explained."""
        name = f"{self.label!r} (id {self.class_id})" if self.label else f"class {self.class_id}"
        h, w, c = self.layer_shape
        what = f"{name} score {self.score:.3f}"
        if self.detection_index is not None and self.box is not None:
            b = ", ".join(f"{v:.3f}" for v in self.box)
            what = f"detection #{self.detection_index} {what} box [{b}]"
        return f"{what}; layer {self.layer} ({h}x{w}x{c}); {self.method}"


# --- geometry and drawing (numpy/OpenCV only) -------------------------------------------------


def heatmap_to_frame(cam: np.ndarray, transform: Any) -> np.ndarray:
    """A map over the model input's feature grid ``(h, w)`` -> ``(H, W)`` over the original frame.

    Each frame pixel centre is mapped to the model input with the runtime's ``transform``
    (resize or letterbox; padding is skipped) and sampled bilinearly from the grid, whose cells
    tile the whole model input.
    """
    import cv2

    grid = np.asarray(cam, dtype=np.float32)
    if grid.ndim != 2 or min(grid.shape) < 1:
        raise ValueError(f"cam must be a 2-D map, got shape {grid.shape}")
    gh, gw = grid.shape
    fh, fw = transform.frame_hw
    xs = (np.arange(fw, dtype=np.float64) + 0.5) / fw
    ys = (np.arange(fh, dtype=np.float64) + 0.5) / fh
    ix = transform.points_to_input(np.stack([xs, np.zeros_like(xs)], axis=-1))[:, 0]
    iy = transform.points_to_input(np.stack([np.zeros_like(ys), ys], axis=-1))[:, 1]
    map_x, map_y = np.meshgrid(
        (ix * gw - 0.5).astype(np.float32), (iy * gh - 0.5).astype(np.float32)
    )
    return cv2.remap(grid, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def overlay_heatmap(
    image_rgb: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.45, box: Box | None = None
) -> np.ndarray:
    """The heatmap (``(H, W)`` in [0, 1]) as a JET colour map alpha-blended over the RGB image,
    with ``box`` (normalized xyxy) outlined when given."""
    import cv2

    img = np.asarray(image_rgb)
    h = np.asarray(heatmap, dtype=np.float32)
    if img.shape[:2] != h.shape:
        raise ValueError(f"heatmap {h.shape} does not match the image {img.shape[:2]}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    levels = np.clip(np.nan_to_num(h) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    color = cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    out = cv2.addWeighted(img, 1.0 - alpha, color, alpha, 0.0)
    if box is not None:
        H, W = h.shape
        x0, y0, x1, y1 = box
        thick = max(1, round(min(H, W) / 200))
        p0 = (round(x0 * W), round(y0 * H))
        p1 = (round(x1 * W) - 1, round(y1 * H) - 1)
        cv2.rectangle(out, p0, p1, (255, 255, 255), thick + 2)
        cv2.rectangle(out, p0, p1, (0, 200, 0), thick)
    return out


# --- Keras side ---------------------------------------------------------------------------------


def _keras() -> Any:
    try:
        import keras
    except ImportError as exc:
        raise DependencyMissing(f"Grad-CAM needs TensorFlow/Keras ({exc})") from None
    return keras


def _producer(tensor: Any) -> Any:
    """The layer that computes a functional-model tensor."""
    return tensor._keras_history[0]


def _is_map(layer: Any) -> bool:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):  # no single output
        return False
    return len(shape) == 4


def feature_layer(keras_model: Any, name: str | None = None) -> str:
    """The layer whose 4-D output Grad-CAM weighs: ``name`` when given (checked), else the map
    that feeds the global pooling (or flatten), else the last 4-D layer."""
    if name is not None:
        try:
            layer = keras_model.get_layer(name)
        except ValueError:
            maps = [lyr.name for lyr in keras_model.layers if _is_map(lyr)]
            raise UsageError(
                f"{keras_model.name}: no layer {name!r}",
                hint=f"4-D layers near the output: {', '.join(maps[-6:])}",
            ) from None
        if not _is_map(layer):
            shape = getattr(layer, "output", None)
            shape = tuple(shape.shape) if shape is not None and hasattr(shape, "shape") else "?"
            raise UsageError(
                f"{keras_model.name}: layer {name!r} outputs {shape}; Grad-CAM needs a 4-D "
                "feature map [N, H, W, C]"
            )
        return name
    for layer in keras_model.layers:
        if type(layer).__name__ in _POOLING:
            src = _producer(layer.input)
            if _is_map(src):
                return src.name
    maps = [lyr.name for lyr in keras_model.layers if _is_map(lyr)]
    if not maps:
        raise UsageError(f"{keras_model.name}: no 4-D feature map to explain")
    return maps[-1]


def _score_layer(keras_model: Any) -> str:
    """The classifier's pre-softmax layer (the input of a final softmax), else the output."""
    last = _producer(keras_model.outputs[0])
    kind = type(last).__name__
    act = getattr(getattr(last, "activation", None), "__name__", "")
    if kind == "Softmax" or (kind == "Activation" and act == "softmax"):
        return _producer(last.input).name
    return last.name


def grad_cam(
    keras_model: Any,
    x: np.ndarray,
    *,
    layer: str,
    score_layer: str,
    index: Sequence[int],
    method: str = "gradcam",
) -> np.ndarray:
    """Grad-CAM of the scalar ``score_layer`` output ``[index]`` w.r.t. the output of ``layer``
    for input ``x`` ``[1, H, W, C]``: a ``(h, w)`` float32 map >= 0 on ``layer``'s grid.

    ``method``: "gradcam" weighs each channel by its spatially averaged gradient; "hirescam"
    (Draelos & Carin 2020) multiplies gradient and activation element-wise before the channel
    sum, so only positions that actually raised this score light up (instance-specific for a
    detection, where the averaged weights also light up other objects of the class)."""
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    keras = _keras()
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise DependencyMissing(f"Grad-CAM needs TensorFlow ({exc})") from None
    if keras.backend.backend() != "tensorflow":
        raise DependencyMissing(
            f"Grad-CAM runs on the TensorFlow Keras backend, this one is {keras.backend.backend()!r}"
        )
    probe = keras.Model(
        keras_model.inputs,
        [keras_model.get_layer(layer).output, keras_model.get_layer(score_layer).output],
    )
    inputs = tf.convert_to_tensor(np.asarray(x, np.float32))
    with tf.GradientTape() as tape:
        fmap, out = probe([inputs], training=False)
        score = out[tuple(int(i) for i in index)]
    grads = tape.gradient(score, fmap)
    if grads is None:
        raise UsageError(
            f"layer {layer!r} does not influence {score_layer!r}; pick another --layer"
        )
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True) if method == "gradcam" else grads
    cam = tf.nn.relu(tf.reduce_sum(weights * fmap, axis=-1))[0]
    return np.asarray(cam.numpy(), np.float32)


# --- models --------------------------------------------------------------------------------------


def load_explainable(
    model: str | Path,
    *,
    input_size: int | None = None,
    arch: str | None = None,
    labels: Sequence[str] = (),
) -> Any:
    """A runtime :class:`~edgekit.runtime.model.Model` over a Keras model: a ``.keras``
    checkpoint (loaded as ``edgekit eval`` does) or a zoo name built with random weights."""
    p = Path(model)
    suffix = p.suffix.lower()
    if suffix == ".tflite":
        raise UnsupportedModelError(
            f"{p}: Grad-CAM needs gradients, which a .tflite model does not carry",
            hint="pass the Keras checkpoint (.keras) it was exported from",
        )
    if suffix in (".keras", ".h5"):
        if not p.is_file():
            raise ModelLoadError(f"{p}: model file not found")
        from edgekit.eval.run import load_keras

        return load_keras(p, arch=arch, labels=labels)
    if p.exists():
        raise UnsupportedModelError(f"{p}: not a Keras checkpoint (.keras)")
    from edgekit.zoo.registry import list_models

    if str(model) not in {e.name for e in list_models()}:
        raise ModelLoadError(
            f"{model}: no such model file, and not a zoo model name",
            hint="see edgekit models list",
        )
    _keras()
    from edgekit.zoo.keras_runtime import runtime_model
    from edgekit.zoo.registry import get_entry

    entry = get_entry(str(model))
    km = entry.create(input_size=input_size)
    return runtime_model(km, entry.spec(km, tuple(labels)))


def _keras_model(model: Any) -> Any:
    km = getattr(model.interpreter, "keras_model", None)
    if km is None:
        raise UnsupportedModelError(
            f"{model.name}: Grad-CAM needs a Keras model, this one runs on {model.backend.name}",
            hint="pass the Keras checkpoint (.keras)",
        )
    return km


def _class_id(target: str | int, labels: Sequence[str], num_classes: int, offset: int) -> int:
    """A label or an id -> the model's class index (``labels[id + offset]`` names it)."""
    if isinstance(target, str):
        names = [str(v) for v in labels]
        for key, candidates in ((target, names), (target.lower(), [v.lower() for v in names])):
            if key in candidates and 0 <= candidates.index(key) - offset < num_classes:
                return candidates.index(key) - offset
        try:
            target = int(target)
        except ValueError:
            shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
            raise UsageError(
                f"unknown class {target!r}",
                hint=f"labels: {shown}" if names else "the model has no labels; pass a class id",
            ) from None
    if not 0 <= int(target) < num_classes:
        raise UsageError(f"class id {target} is out of range: the model has {num_classes} classes")
    return int(target)


def _label(labels: Sequence[str], cid: int, offset: int) -> str:
    i = cid + offset
    return str(labels[i]) if 0 <= i < len(labels) else ""


def explain_image(
    model: Any,
    image_rgb: np.ndarray,
    *,
    target_class: str | int | None = None,
    layer: str | None = None,
    box: int | None = None,
    method: str | None = None,
) -> Explanation:
    """Grad-CAM of one RGB uint8 image through a Keras-backed runtime ``Model``.

    ``method`` (see :func:`grad_cam`) defaults to "gradcam" for classifiers and "hirescam" for
    detectors."""
    km = _keras_model(model)
    spec = model.spec
    if method is not None and method not in METHODS:
        raise UsageError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if spec.task == "classify":
        if box is not None:
            raise UsageError("--box applies to detectors; this model is a classifier")
        return _explain_classifier(model, km, image_rgb, target_class, layer, method or "gradcam")
    if spec.task == "detect" and spec.decoder in _HEADS:
        return _explain_detector(
            model, km, image_rgb, target_class, layer, box or 0, method or "hirescam"
        )
    raise UsageError(
        f"{model.name}: Grad-CAM explains classifiers and SSD/YOLO detectors, not "
        f"{spec.task} models (decoder {spec.decoder})"
    )


def _finish(km: Any, cam: np.ndarray, transform: Any, layer: str, **kw: Any) -> Explanation:
    heat = heatmap_to_frame(cam, transform)
    peak = float(heat.max()) if heat.size else 0.0
    notes = list(kw.pop("notes", ()))
    if peak > 0:
        heat = heat / peak
    else:
        notes.append("the Grad-CAM is zero everywhere: no feature of this layer raises the score")
    shape = tuple(int(v) for v in km.get_layer(layer).output.shape[1:])
    return Explanation(
        heatmap=np.clip(heat, 0.0, 1.0).astype(np.float32),
        cam=cam,
        layer=layer,
        layer_shape=shape,
        notes=tuple(notes),
        **kw,
    )


def _explain_classifier(
    model: Any,
    km: Any,
    image: np.ndarray,
    target: str | int | None,
    layer: str | None,
    method: str,
) -> Explanation:
    tensor, transform = model.preprocess(image)
    num = int(km.outputs[0].shape[-1])
    pred = model.postprocess(model.invoke(tensor), transform, score_threshold=0.0, max_results=num)
    offset = _offset(model.spec)
    cid = (
        pred.classes[0].class_id if target is None else _class_id(target, model.labels, num, offset)
    )
    score = next((c.score for c in pred.classes if c.class_id == cid), float("nan"))
    name = feature_layer(km, layer)
    cam = grad_cam(
        km, tensor, layer=name, score_layer=_score_layer(km), index=(0, cid), method=method
    )
    return _finish(
        km,
        cam,
        transform,
        name,
        task="classify",
        method=method,
        class_id=cid,
        label=_label(model.labels, cid, offset),
        score=float(score),
    )


def _offset(spec: Any) -> int:
    """The label offset of a spec (``labels[class_id + offset]``)."""
    return int(spec.decoder_params.get("label_offset", 0))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _candidates(model: Any, outs: list[np.ndarray], logits: np.ndarray, col: int) -> tuple:
    """Boxes (normalized input xyxy, clipped) and scores of every anchor/cell for one column."""
    from edgekit.core.boxes import clip01, cxcywh_to_xyxy

    params = model.spec.decoder_params
    if model.spec.decoder == "ssd_raw":
        from edgekit.core.anchors import anchors_from_params
        from edgekit.runtime.decoders.ssd import decode_boxes

        names = list(params.get("output_names", []))
        bi = (
            names.index("box_encodings")
            if "box_encodings" in names
            else next(i for i, o in enumerate(outs) if o.shape[-1] == 4)
        )
        boxes = decode_boxes(
            outs[bi], anchors_from_params(params), params.get("scales", (10, 10, 5, 5))
        )
        if params.get("activation", "sigmoid") == "softmax":
            z = logits - logits.max(axis=1, keepdims=True)
            scores = (np.exp(z) / np.exp(z).sum(axis=1, keepdims=True))[:, col]
        else:
            scores = _sigmoid(logits[:, col])
    else:
        pred = outs[0][0] if outs[0].ndim == 3 else outs[0]
        boxes = cxcywh_to_xyxy(np.asarray(pred[:4].T, np.float64))
        if not params.get("normalized", True):
            h, w = model.spec.input_size
            boxes = boxes / np.array([w, h, w, h], np.float64)
        scores = np.asarray(pred[4 + col], np.float64)
    b = np.asarray(boxes, np.float64)
    b = np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], axis=1)
    return clip01(b), np.asarray(scores, np.float64)


def _scale_map(km: Any, decoder: str, anchor: int) -> str | None:
    """The layer whose output is the feature map of the scale that holds ``anchor``."""
    pattern, head = _HEADS[decoder]
    levels = []
    for layer in km.layers:
        m = re.match(pattern, layer.name)
        if m:
            levels.append((int(m.group(1)), int(layer.output.shape[1])))
    start = 0
    for level, count in sorted(levels):
        if anchor < start + count:
            try:
                return _producer(km.get_layer(head.format(level)).input).name
            except ValueError:
                return None
        start += count
    return None


def _explain_detector(
    model: Any,
    km: Any,
    image: np.ndarray,
    target: str | int | None,
    layer: str | None,
    k: int,
    method: str,
) -> Explanation:
    spec = model.spec
    params = spec.decoder_params
    if k < 0:
        raise UsageError(f"--box must be >= 0, got {k}")
    tensor, transform = model.preprocess(image)
    raw = model.invoke(tensor)
    outs = [np.asarray(o, np.float64) for o in model.dequantize(raw)]
    pred = model.postprocess(raw, transform, score_threshold=0.0, max_results=100)
    dets = list(pred.detections)
    offset = _offset(spec)
    background = 1 if spec.decoder == "ssd_raw" and params.get("has_background", True) else 0
    try:
        logits_layer = km.get_layer("class_logits")
    except ValueError:
        raise UnsupportedModelError(
            f"{model.name}: no 'class_logits' layer; Grad-CAM explains the zoo's SSDLite/YOLO heads"
        ) from None
    num = int(logits_layer.output.shape[-1]) - background
    if target is not None:
        cid = _class_id(target, model.labels, num, offset)
        dets = [d for d in dets if d.class_id == cid]
    if k >= len(dets):
        which = f" of class {target!r}" if target is not None else ""
        raise UsageError(f"no detection #{k}{which}: the decoder returned {len(dets)}")
    det = dets[k]
    col = det.class_id + background
    logits = np.asarray(
        _keras().Model(km.inputs, logits_layer.output)([tensor], training=False), np.float64
    )[0]
    boxes, scores = _candidates(model, outs, logits, col)
    frame_boxes = transform.boxes_to_frame(boxes)
    cost = np.abs(frame_boxes - np.asarray(det.box)).sum(axis=1) + 1e3 * np.abs(scores - det.score)
    anchor = int(np.argmin(cost))
    notes: list[str] = []
    name = layer
    if name is None:
        name = _scale_map(km, spec.decoder, anchor)
        if name is None:
            raise UsageError(
                f"{model.name}: cannot tell which feature map produced anchor {anchor}",
                hint="pass --layer NAME",
            )
    else:
        feature_layer(km, name)
    cam = grad_cam(
        km, tensor, layer=name, score_layer="class_logits", index=(0, anchor, col), method=method
    )
    return _finish(
        km,
        cam,
        transform,
        name,
        task="detect",
        method=method,
        class_id=det.class_id,
        label=det.label,
        score=float(det.score),
        box=det.box,
        detection_index=k,
        notes=notes,
    )


# --- the command's library function -------------------------------------------------------------


def read_image(path: Path) -> np.ndarray:
    """An image file -> RGB uint8; ``SourceError`` when missing or unreadable."""
    from edgekit.data.images import decode_rgb

    p = Path(path)
    if not p.is_file():
        raise SourceError(f"{p}: image not found")
    img = decode_rgb(p)
    if img is None:
        raise SourceError(f"{p}: cannot read image (not an image OpenCV can decode)")
    return img


def explain(config: ExplainConfig) -> Explanation:
    """Load the model and the image, compute the Grad-CAM and (with ``config.out``) write the
    overlay PNG at the image's size."""
    import dataclasses

    import cv2

    if not 0.0 <= config.alpha <= 1.0:
        raise UsageError(f"alpha must be in [0, 1], got {config.alpha}")
    if config.out is not None and Path(config.out).suffix.lower() != ".png":
        raise UsageError(f"{config.out}: the overlay is written as PNG; use a .png name")
    image = read_image(config.image)
    model = load_explainable(
        config.model, input_size=config.input_size, arch=config.arch, labels=config.labels
    )
    result = explain_image(
        model,
        image,
        target_class=config.target_class,
        layer=config.layer,
        box=config.box,
        method=config.method,
    )
    if config.out is None:
        return result
    out = Path(config.out)
    picture = overlay_heatmap(image, result.heatmap, alpha=config.alpha, box=result.box)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SinkError(f"{out}: cannot create folder ({exc.strerror or exc})") from None
    if not cv2.imwrite(str(out), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
        raise SinkError(f"{out}: cannot write PNG")
    return dataclasses.replace(result, out=out)
