"""The Keras-checkpoint path: a Keras model behind the interpreter API, decoded by the runtime."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from edgekit.core.types import ModelSpec
from edgekit.runtime.interpreter import BackendInfo
from edgekit.runtime.model import Model
from edgekit.zoo.keras_runtime import KerasInterpreter


class FakeKeras:
    """Looks like a keras.Model with a MoveNet-style output [1,1,17,3] (y, x, score)."""

    name = "fake"
    input_shape = (None, 64, 64, 3)
    outputs = (SimpleNamespace(shape=(None, 1, 17, 3), name="keypoints"),)

    def __init__(self):
        self.seen = []

    def __call__(self, x, training=False):
        self.seen.append(np.array(x))
        kps = np.zeros((1, 1, 17, 3), np.float32)
        kps[..., 0], kps[..., 1], kps[..., 2] = 0.25, 0.75, 0.9
        return kps


def test_keras_interpreter_runs_the_runtime_pipeline():
    fake = FakeKeras()
    spec = ModelSpec(
        task="pose",
        decoder="movenet",
        input_size=(64, 64),
        input_dtype="float32",
        normalization=(127.5, 127.5),
        resize_mode="resize",
    )
    model = Model(KerasInterpreter(fake), spec, backend=BackendInfo("keras", 1))
    image = np.full((32, 48, 3), 255, np.uint8)
    pred = model.predict(image, score_threshold=0.0)
    x = fake.seen[0]
    assert x.shape == (1, 64, 64, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x, 1.0)  # (255 - 127.5) / 127.5, the spec's normalization
    kp = pred.poses[0].keypoints[0]
    assert (kp.x, kp.y, kp.score) == pytest.approx((0.75, 0.25, 0.9))


def test_keras_interpreter_refuses_dynamic_input():
    fake = FakeKeras()
    fake.input_shape = (None, None, None, 3)
    with pytest.raises(Exception, match="not a fixed-size image"):
        KerasInterpreter(fake)


@pytest.mark.slow
def test_keras_checkpoint_end_to_end(shared, tmp_path):
    """A zoo SSDLite saved as .keras evaluates with the registry spec and the dataset's names."""
    pytest.importorskip("tensorflow")
    from edgekit.eval import EvalConfig, evaluate_model
    from edgekit.zoo.registry import create_model

    path = tmp_path / "ssd.keras"
    create_model("ssdlite_mobilenet_v2", num_classes=80, input_size=160, width=0.35).save(path)
    result = evaluate_model(
        EvalConfig(model=path, data=shared("coco128"), split="all", max_images=2)
    )
    assert result.task == "detect" and result.backend == "keras x1" and result.class_map == "name"
    assert result.images == 2 and "mAP" in result.metrics
