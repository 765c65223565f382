"""The model zoo: one table of named models, how to build each and how to describe its export.

``create_model(name, num_classes=..., input_size=..., width=..., **builder_kwargs)`` builds a
``keras.Model`` (random weights; nothing is downloaded). ``get_entry(name).spec(model, labels)``
gives the ``ModelSpec`` the export helper embeds: task, decoder, input size, normalization,
resize mode and decoder parameters (for SSD the anchor generator's keyword arguments, so the
runtime regenerates the exact anchors).

Names:

- classifiers (decoder "classify", output ``predictions`` ``[1, N]`` softmax): ``mobilenet_v1``,
  ``mobilenet_v2``, ``mobilenet_v3_small``, ``mobilenet_v3_large``, and
  ``..._minimalistic`` of both, ``efficientnet_lite0`` .. ``efficientnet_lite4``;
- detectors: ``ssdlite_<backbone>`` for ``mobilenet_v2``, ``mobilenet_v3_large_minimalistic``,
  ``efficientnet_lite0`` (decoder "ssd_raw", outputs ``box_encodings`` ``[1, A, 4]`` and
  ``class_logits`` ``[1, A, C+1]``); ``yolo_tiny`` (decoder "yolo", ``predictions``
  ``[1, 4+C, N]``, boxes normalized cx, cy, w, h);
- pose: ``movenet_mobilenet_v2`` (decoder "movenet", ``keypoints`` ``[1, 1, 17, 3]``).

``width`` is the backbone's width multiplier (alpha for MobileNets, the width coefficient for
EfficientNet-Lite). Inputs are float32 pixels normalized with ``spec.normalization``
(``(pixel - mean) / std``); the export helper sets the spec's dtype/quantization.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgekit import __version__
from edgekit.core.anchors import ssd_anchors
from edgekit.core.types import COCO_KEYPOINT_NAMES, ModelSpec
from edgekit.errors import UsageError

__all__ = ["ModelEntry", "ModelInfo", "create_model", "describe_models", "get_entry", "list_models"]

Size = tuple[int, int]


def _size(value: int | Sequence[int]) -> Size:
    if isinstance(value, int):
        size = (value, value)
    else:
        vals = tuple(int(v) for v in value)
        if len(vals) != 2:
            raise UsageError(f"input size must be N or (height, width), got {value!r}")
        size = (vals[0], vals[1])
    if min(size) < 1:
        raise UsageError(f"input size must be positive, got {value!r}")
    return size


@dataclass(frozen=True)
class ModelEntry:
    """One named model: what it does, how to build it and how to describe its export."""

    name: str
    task: str
    decoder: str
    default_input_size: Size
    builder: Callable[..., Any]
    edgetpu_ready: bool
    edgetpu_reason: str
    normalization: tuple[float, float]
    resize_mode: str = "resize"
    default_num_classes: int = 1000
    description: str = ""
    backbone: str = ""
    output_names: tuple[str, ...] = ()
    extra_params: Callable[[Size, int], dict[str, Any]] = field(default=lambda size, n: {})

    def create(
        self,
        num_classes: int | None = None,
        input_size: int | Sequence[int] | None = None,
        width: float | None = None,
        *,
        labels: Sequence[str] = (),
        **kwargs: Any,
    ) -> Any:
        """Build the Keras model (see ``create_model``); ``labels`` (the class names) give the
        class count when ``num_classes`` is None."""
        if num_classes is None and labels and self.task != "pose":
            num_classes = len(labels)
        if self.task == "pose":
            if num_classes not in (None, 1):
                raise UsageError(
                    f"{self.name} is a single-person pose model; num_classes does not apply"
                )
        elif num_classes is not None and num_classes < 1:
            raise UsageError(f"num_classes must be >= 1, got {num_classes}")
        size = _size(input_size) if input_size is not None else self.default_input_size
        n = self.default_num_classes if num_classes is None else int(num_classes)
        return self.builder(num_classes=n, input_size=size, width=width, **kwargs)

    def spec(self, model_or_input_size: Any = None, labels: Sequence[str] = ()) -> ModelSpec:
        """The ``ModelSpec`` of this model at an input size, or of a model built from this entry.

        With a model, the input size and class count are read from it and ``labels`` must match
        the class count (``UsageError`` otherwise). The spec's ``input_dtype`` is "float32" (the
        Keras model); the export helper replaces it and the quantization.
        """
        num_classes: int | None = None
        if model_or_input_size is None:
            size = self.default_input_size
        elif isinstance(model_or_input_size, (int, tuple, list)):
            size = _size(model_or_input_size)
        else:
            model = model_or_input_size
            size = _size(tuple(int(v) for v in model.input_shape[1:3]))
            num_classes = self._classes_of(model)
        labels = tuple(str(v) for v in labels)
        if num_classes is None:
            num_classes = len(labels) if labels else self.default_num_classes
        if self.task != "pose" and labels and len(labels) != num_classes:
            raise UsageError(
                f"{self.name}: {len(labels)} labels given but the model has {num_classes} classes"
            )
        params: dict[str, Any] = {"output_names": list(self.output_names)}
        params.update(self.extra_params(size, num_classes))
        return ModelSpec(
            task=self.task,
            decoder=self.decoder,
            input_size=size,
            input_dtype="float32",
            normalization=self.normalization,
            resize_mode=self.resize_mode,
            labels=labels if self.task != "pose" else (labels or ("person",)),
            decoder_params=params,
            keypoint_names=COCO_KEYPOINT_NAMES if self.task == "pose" else (),
            name=self.name,
            version=__version__,
        )

    def _classes_of(self, model: Any) -> int | None:
        """The class count of ``model``; ``UsageError`` when it is not this entry's export form."""
        shapes = [tuple(o.shape) for o in model.outputs]
        if len(shapes) != len(self.output_names):
            raise UsageError(
                f"{self.name}: the spec describes the model with outputs {list(self.output_names)}, "
                f"this one has {len(shapes)} outputs (a decode=False training model? wrap it with "
                "add_yolo_decode / add_movenet_decode first)"
            )
        if self.decoder == "ssd_raw":
            expected = int(
                ssd_anchors(**self.extra_params(model.input_shape[1:3], 1)["anchors"]).shape[0]
            )
            if shapes[0][1] != expected:
                raise UsageError(
                    f"{self.name}: the model predicts {shapes[0][1]} boxes but the default anchors "
                    f"at this input size number {expected} (built with other anchor settings?)"
                )
        if self.decoder == "classify":
            return int(shapes[0][-1])
        if self.decoder == "ssd_raw":
            return int(shapes[1][-1]) - 1
        if self.decoder == "yolo":
            return int(shapes[0][1]) - 4
        return None


# --------------------------------------------------------------------------- builders


def _classifier(backbone: str) -> Callable[..., Any]:
    def build(num_classes: int, input_size: Size, width: float | None, **kw: Any) -> Any:
        from edgekit.zoo.classifier import build_classifier

        return build_classifier(backbone, input_size, num_classes, width=width, **kw)

    return build


def _ssdlite(backbone: str) -> Callable[..., Any]:
    def build(num_classes: int, input_size: Size, width: float | None, **kw: Any) -> Any:
        from edgekit.zoo.ssd import build_ssdlite

        return build_ssdlite(backbone, num_classes, input_size, width=width, **kw)

    return build


def _yolo(num_classes: int, input_size: Size, width: float | None, **kw: Any) -> Any:
    from edgekit.zoo.yolo import build_yolo_tiny

    if width is None:
        width = 0.5
    return build_yolo_tiny(num_classes, input_size, width=width, **kw)


def _movenet(num_classes: int, input_size: Size, width: float | None, **kw: Any) -> Any:
    from edgekit.zoo.pose import build_movenet

    return build_movenet(input_size, width=width, **kw)


def _ssd_params(size: Size, num_classes: int) -> dict[str, Any]:
    from edgekit.zoo.ssd import BOX_SCALES, ssd_anchor_kwargs

    anchors = ssd_anchor_kwargs(size)
    return {
        "anchors": anchors,
        "num_anchors": int(ssd_anchors(**anchors).shape[0]),
        "scales": list(BOX_SCALES),
        "has_background": True,
        "scores_are_logits": True,
        "activation": "sigmoid",
        "num_classes": num_classes,
    }


def _yolo_params(size: Size, num_classes: int) -> dict[str, Any]:
    return {
        "box_format": "cxcywh",
        "normalized": True,
        "strides": [8, 16, 32],
        "scores": "sigmoid",
        "num_classes": num_classes,
        "layout": "[1, 4+C, N]",
    }


def _entries() -> dict[str, ModelEntry]:
    from edgekit.zoo.backbones import BACKBONES

    out: dict[str, ModelEntry] = {}
    for name, bb in BACKBONES.items():
        out[name] = ModelEntry(
            name=name,
            task="classify",
            decoder="classify",
            default_input_size=(bb.default_input_size, bb.default_input_size),
            builder=_classifier(name),
            edgetpu_ready=bb.edgetpu_ready,
            edgetpu_reason=bb.edgetpu_reason,
            normalization=bb.normalization,
            description=f"{name} classifier (width {bb.default_width:g})",
            backbone=name,
            output_names=("predictions",),
            extra_params=lambda size, n: {"activation": "softmax"},
        )
    for backbone in ("mobilenet_v2", "mobilenet_v3_large_minimalistic", "efficientnet_lite0"):
        bb = BACKBONES[backbone]
        out[f"ssdlite_{backbone}"] = ModelEntry(
            name=f"ssdlite_{backbone}",
            task="detect",
            decoder="ssd_raw",
            default_input_size=(320, 320),
            builder=_ssdlite(backbone),
            edgetpu_ready=bb.edgetpu_ready,
            edgetpu_reason=f"{bb.edgetpu_reason}; heads are depthwise + 1x1 convs, decoding and NMS on CPU",
            normalization=bb.normalization,
            default_num_classes=80,
            description=f"SSDLite on {backbone}: 6 feature maps, raw box encodings + class logits",
            backbone=backbone,
            output_names=("box_encodings", "class_logits"),
            extra_params=_ssd_params,
        )
    out["yolo_tiny"] = ModelEntry(
        name="yolo_tiny",
        task="detect",
        decoder="yolo",
        default_input_size=(320, 320),
        builder=_yolo,
        edgetpu_ready=True,
        edgetpu_reason="body is convs/ReLU6/Add/nearest resize; the in-graph box decode and sigmoid run on CPU",
        normalization=BACKBONES["mobilenet_v2"].normalization,
        resize_mode="letterbox",
        default_num_classes=80,
        description="anchor-free YOLOv8-style detector on MobileNetV2 0.5, strides 8/16/32, decode in graph",
        backbone="mobilenet_v2",
        output_names=("predictions",),
        extra_params=_yolo_params,
    )
    out["movenet_mobilenet_v2"] = ModelEntry(
        name="movenet_mobilenet_v2",
        task="pose",
        decoder="movenet",
        default_input_size=(192, 192),
        builder=_movenet,
        edgetpu_ready=True,
        edgetpu_reason="body is convs/ReLU6/Add/nearest resize; the argmax decode tail runs on CPU by design",
        normalization=BACKBONES["mobilenet_v2"].normalization,
        resize_mode="letterbox",
        default_num_classes=1,
        description="MoveNet-style single-person pose (FPN to stride 4, 17 COCO keypoints), decode in graph",
        backbone="mobilenet_v2",
        output_names=("keypoints",),
        extra_params=lambda size, n: {"num_keypoints": 17, "output_stride": 4},
    )
    return out


_REGISTRY: dict[str, ModelEntry] | None = None


def _registry() -> dict[str, ModelEntry]:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _entries()
    return _REGISTRY


def list_models(task: str | None = None) -> list[ModelEntry]:
    """All entries (optionally of one task), in table order."""
    return [e for e in _registry().values() if task is None or e.task == task]


def get_entry(name: str) -> ModelEntry:
    """The entry called ``name``; ``UsageError`` listing the known names otherwise."""
    try:
        return _registry()[name]
    except KeyError:
        known = ", ".join(_registry())
        raise UsageError(f"unknown model {name!r}; known models: {known}") from None


def create_model(
    name: str,
    num_classes: int | None = None,
    input_size: int | Sequence[int] | None = None,
    width: float | None = None,
    **kwargs: Any,
) -> Any:
    """Build model ``name`` as a ``keras.Model`` with random weights (never downloads).

    ``num_classes`` excludes the SSD background; ``input_size`` is N or (height, width);
    ``width`` the backbone's width multiplier; ``kwargs`` go to the builder (e.g.
    ``decode=False`` for the raw YOLO/pose heads used in training, ``km=tf_keras`` for
    classifiers/SSD/raw heads built with tf-keras, ``dropout=``, ``batch_size=1`` for a static
    batch, which exports without dynamic-shape ops, as the Edge TPU compiler needs).
    """
    return get_entry(name).create(num_classes, input_size, width, **kwargs)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A row of ``edgekit models list``."""

    name: str
    task: str
    input_size: Size
    params: int | None
    macs: int | None
    edgetpu_ready: bool
    edgetpu_reason: str
    description: str


def describe_models(task: str | None = None, *, with_stats: bool = True) -> list[ModelInfo]:
    """One ``ModelInfo`` per entry; ``with_stats`` builds each at its default size to count
    parameters and MACs (a few seconds per model)."""
    from edgekit.zoo.counts import model_stats

    rows = []
    for e in list_models(task):
        params = macs = None
        if with_stats:
            import keras

            model = e.create()
            st = model_stats(model)
            params, macs = st.params, st.macs
            del model
            keras.backend.clear_session()
        rows.append(
            ModelInfo(
                e.name,
                e.task,
                e.default_input_size,
                params,
                macs,
                e.edgetpu_ready,
                e.edgetpu_reason,
                e.description,
            )
        )
    return rows
