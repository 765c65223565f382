"""Every registered model builds at a small size, with the documented outputs and a valid spec."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras

from edgekit.core.anchors import ssd_anchors
from edgekit.core.types import ModelSpec
from edgekit.errors import UsageError
from edgekit.zoo.registry import create_model, get_entry, list_models

SMALL = 64
# Keras layers whose TFLite ops quantize to int8 and map onto the Edge TPU (BatchNorm and
# Dropout fold away at export); the decode tails (after the heads) run on CPU by design.
EDGETPU_LAYERS = {
    "InputLayer",
    "Conv2D",
    "DepthwiseConv2D",
    "BatchNormalization",
    "ReLU",
    "Add",
    "Concatenate",
    "Reshape",
    "GlobalAveragePooling2D",
    "Dropout",
    "Dense",
    "Softmax",
    "UpSampling2D",
}
CPU_TAILS = {"YoloDecode", "MoveNetDecode"}
DECODERS = {"ssd_postprocess", "ssd_raw", "yolo", "yolo_nms", "movenet", "posenet", "classify"}
NAMES = [e.name for e in list_models()]


def _output_names(model) -> list[str]:
    return [t._keras_history.operation.name for t in model.outputs]


def test_registry_lists_the_documented_names():
    expected = {
        "mobilenet_v1",
        "mobilenet_v2",
        "mobilenet_v3_small",
        "mobilenet_v3_large",
        "mobilenet_v3_small_minimalistic",
        "mobilenet_v3_large_minimalistic",
        *(f"efficientnet_lite{i}" for i in range(5)),
        "ssdlite_mobilenet_v2",
        "ssdlite_mobilenet_v3_large_minimalistic",
        "ssdlite_efficientnet_lite0",
        "yolo_tiny",
        "movenet_mobilenet_v2",
    }
    assert set(NAMES) == expected
    assert {e.task for e in list_models()} == {"classify", "detect", "pose"}
    assert [e.name for e in list_models("pose")] == ["movenet_mobilenet_v2"]
    for e in list_models():
        assert e.decoder in DECODERS
        assert e.edgetpu_reason
    assert not get_entry("mobilenet_v3_large").edgetpu_ready
    assert get_entry("mobilenet_v3_large_minimalistic").edgetpu_ready


@pytest.mark.parametrize("name", NAMES)
def test_builds_small_and_outputs_documented_shapes(name):
    entry = get_entry(name)
    num_classes = None if entry.task == "pose" else 3
    model = create_model(
        name, num_classes=num_classes, input_size=SMALL, width=0.35 if "mobilenet" in name else None
    )
    assert model.input_shape == (None, SMALL, SMALL, 3)
    assert _output_names(model) == list(entry.output_names)
    assert model.name == name  # a saved model finds its registry entry by name
    x = np.random.default_rng(0).uniform(-1, 1, (1, SMALL, SMALL, 3)).astype("float32")
    outputs = model(x, training=False)
    outputs = [
        np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])
    ]
    default = model(x)  # no training= given: must be inference mode too (no batch statistics)
    default = [
        np.asarray(o) for o in (default if isinstance(default, (list, tuple)) else [default])
    ]
    for a, b in zip(outputs, default, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    kinds = {type(layer).__name__ for layer in model.layers}
    relu_caps = {
        float(layer.max_value)
        for layer in model.layers
        if type(layer).__name__ == "ReLU" and layer.max_value
    }
    if entry.edgetpu_ready:
        body = kinds - CPU_TAILS
        acts = {
            layer.activation.__name__
            for layer in model.layers
            if type(layer).__name__ == "Activation"
        }
        assert body - {"Activation"} <= EDGETPU_LAYERS, body - EDGETPU_LAYERS
        assert acts <= {"sigmoid"}
        assert relu_caps <= {6.0}
    else:
        assert "Multiply" in kinds  # squeeze-excite / hard-swish: why it is not Edge-TPU-ready
    assert all(np.isfinite(o).all() for o in outputs)
    spec = entry.spec(model, labels=[f"c{i}" for i in range(3)] if entry.task != "pose" else ())
    assert spec.input_size == (SMALL, SMALL)
    assert ModelSpec.from_json(spec.to_json()) == spec
    params = spec.decoder_params
    if entry.decoder == "classify":
        (probs,) = outputs
        assert probs.shape == (1, 3)
        np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-5)
    elif entry.decoder == "ssd_raw":
        boxes, logits = outputs
        anchors = ssd_anchors(**params["anchors"])
        assert boxes.shape == (1, len(anchors), 4)
        assert logits.shape == (1, len(anchors), 3 + 1)
        assert params["num_anchors"] == len(anchors)
        assert params["has_background"] and params["scores_are_logits"]
        assert params["scales"] == [10.0, 10.0, 5.0, 5.0]
    elif entry.decoder == "yolo":
        (pred,) = outputs
        n = sum(math.ceil(SMALL / s) ** 2 for s in params["strides"])
        assert pred.shape == (1, 4 + 3, n)
        assert (pred[0, 4:] >= 0).all() and (pred[0, 4:] <= 1).all()
    elif entry.decoder == "movenet":
        (kps,) = outputs
        assert kps.shape == (1, 1, 17, 3)
        assert (kps >= 0).all() and (kps <= 1).all()
        assert len(spec.keypoint_names) == 17
    keras.backend.clear_session()


def test_spec_defaults_and_validation():
    spec = get_entry("ssdlite_mobilenet_v2").spec(320, labels=[str(i) for i in range(80)])
    assert spec.task == "detect" and spec.decoder == "ssd_raw"
    assert spec.normalization == (127.5, 127.5)
    assert spec.decoder_params["num_anchors"] == 2034
    assert spec.decoder_params["anchors"]["feature_sizes"][0] == [20, 20]
    lite = get_entry("efficientnet_lite2").spec()
    assert lite.input_size == (260, 260) and lite.normalization == (127.0, 128.0)
    assert get_entry("yolo_tiny").spec().resize_mode == "letterbox"
    model = create_model("mobilenet_v3_small_minimalistic", num_classes=4, input_size=32)
    with pytest.raises(UsageError, match="3 labels"):
        get_entry("mobilenet_v3_small_minimalistic").spec(model, labels=["a", "b", "c"])


def test_spec_refuses_models_it_does_not_describe():
    raw = create_model("yolo_tiny", num_classes=2, input_size=SMALL, width=0.35, decode=False)
    with pytest.raises(UsageError, match="add_yolo_decode"):
        get_entry("yolo_tiny").spec(raw)
    other = create_model(
        "ssdlite_mobilenet_v2", num_classes=2, input_size=SMALL, width=0.35, aspect_ratios=(1.0,)
    )
    with pytest.raises(UsageError, match="anchors"):
        get_entry("ssdlite_mobilenet_v2").spec(other)


def test_bad_requests_raise_usage_errors():
    with pytest.raises(UsageError, match="unknown model"):
        get_entry("resnet50")
    with pytest.raises(UsageError, match="multiple of 32"):
        create_model("yolo_tiny", num_classes=2, input_size=100)
    with pytest.raises(UsageError, match="num_classes"):
        create_model("movenet_mobilenet_v2", num_classes=5, input_size=64)
    with pytest.raises(UsageError, match="num_classes"):
        create_model("mobilenet_v2", num_classes=0, input_size=32)


def test_layer_names_are_stable_feature_endpoints():
    model = create_model("ssdlite_mobilenet_v2", num_classes=2, input_size=SMALL, width=0.35)
    for name in (
        "block_13_expand_relu",
        "out_relu",
        "extra_4_expand",
        "box_head_0",
        "class_head_5",
    ):
        model.get_layer(name)
    yolo = create_model("yolo_tiny", num_classes=2, input_size=SMALL, decode=False)
    assert _output_names(yolo) == ["box_distances", "class_logits"]
    pose = create_model("movenet_mobilenet_v2", input_size=SMALL, width=0.35, decode=False)
    assert _output_names(pose) == [
        "center_heatmap",
        "keypoint_regression",
        "keypoint_heatmaps",
        "keypoint_offsets",
    ]
    assert [tuple(o.shape) for o in pose.outputs] == [
        (None, 16, 16, 1),
        (None, 16, 16, 34),
        (None, 16, 16, 17),
        (None, 16, 16, 34),
    ]
