"""Backbone weights copied out of a quantized MobileNetV2 .tflite reproduce its ImageNet
predictions in the zoo's Keras MobileNetV2; a wrong width is refused."""

from __future__ import annotations

import numpy as np
import pytest
from shared_data import shared_path

from edgekit.errors import UsageError

pytestmark = [pytest.mark.tf, pytest.mark.shared]


def test_copied_backbone_classifies_like_the_tflite_model():
    keras = pytest.importorskip("keras")
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.train.tflite_init import (
        calibration_images,
        mobilenet_v2_from_tflite,
        read_folded_convs,
    )
    from edgekit.zoo.mobilenet import _input, mobilenet_v2_backbone

    tfl = shared_path("models", "mobilenet_v2_1.0_224_quant.tflite")
    images = calibration_images(
        [shared_path("images", "grace_hopper.bmp"), shared_path("images", "squat.bmp")],
        (224, 224),
    )
    inp = _input(224, keras)
    model = keras.Model(inp, mobilenet_v2_backbone(inp, alpha=1.0, km=keras)["stride32"])
    assert mobilenet_v2_from_tflite(model, tfl, images) == 52
    _, kernel, bias = read_folded_convs(tfl)[-1]  # the logits 1x1 conv after the backbone
    logits = model.predict(images, verbose=0).mean((1, 2)) @ kernel[0, 0] + bias
    it = Interpreter(str(tfl))
    it.allocate_tensors()
    for image, row in zip(images, logits, strict=True):
        q = np.clip(np.round(image * 127.5 + 127.5), 0, 255).astype(np.uint8)
        it.set_tensor(it.get_input_details()[0]["index"], q[None])
        it.invoke()
        probs = it.get_tensor(it.get_output_details()[0]["index"])[0]
        assert int(np.argmax(row)) == int(np.argmax(probs))


def test_wrong_width_is_refused():
    keras = pytest.importorskip("keras")
    from edgekit.train.tflite_init import mobilenet_v2_from_tflite
    from edgekit.zoo.mobilenet import _input, mobilenet_v2_backbone

    tfl = shared_path("models", "mobilenet_v2_1.0_224_quant.tflite")
    inp = _input(96, keras)
    model = keras.Model(inp, mobilenet_v2_backbone(inp, alpha=0.5, km=keras)["stride32"])
    with pytest.raises(UsageError, match="width"):
        mobilenet_v2_from_tflite(model, tfl)
