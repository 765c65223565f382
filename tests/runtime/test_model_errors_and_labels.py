"""A model whose outputs its decoder cannot read fails with one typed error naming the model and
the output; labels of third-party models are resolved (COCO-80 assumed for an 80-class YOLO
head) and checked against the outputs. Fake interpreters, no real model needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_runtime_model import INFO, SSD_NAMES, FakeInterpreter, detail, ssd_details

from edgekit.core.types import ModelSpec
from edgekit.errors import ModelLoadError, ModelOutputError, UnsupportedModelError
from edgekit.runtime.metadata import ModelMetadata
from edgekit.runtime.model import Model
from edgekit.runtime.spec import (
    ASSUMED_COCO80,
    assumed_labels,
    consistency_warnings,
    infer_spec,
    label_mismatch,
)

IMG = np.zeros((20, 30, 3), np.uint8)


def model_with(spec, outputs, values, path="cam/model.tflite"):
    it = FakeInterpreter([detail("in", (1, 16, 16, 3), np.uint8, index=0)], outputs, values)
    return Model(it, spec, backend=INFO, path=Path(path))


def test_a_decoder_failure_names_the_model_and_the_output():
    # e.g. a classifier whose embedded spec says MoveNet
    spec = ModelSpec(task="pose", decoder="movenet", input_size=(16, 16))
    m = model_with(spec, [detail("scores", (1, 5), index=9)], {9: np.zeros((1, 5), "f4")})
    with pytest.raises(ModelOutputError) as err:
        m.predict(IMG)
    text = str(err.value)
    assert text.startswith("cam/model.tflite: cannot decode output 0 'scores' [1, 5] float32")
    assert "with the movenet decoder: MoveNet output must be (1, 1, K, 3)" in text
    assert isinstance(err.value, ModelLoadError) and err.value.exit_code == 3
    with pytest.raises(ModelOutputError):
        m.check()  # the blank frame the app runs before opening the source


def test_the_failing_output_is_picked_by_its_role():
    spec = ModelSpec(
        task="detect",
        decoder="ssd_postprocess",
        input_size=(16, 16),
        decoder_params={"outputs": {"boxes": 0, "classes": 1, "scores": 2, "count": 3}},
    )
    outs = ssd_details(range(4))
    values = {100: np.zeros((1, 10, 3), "f4"), 101: np.zeros((1, 10)), 102: np.zeros((1, 10))}
    values[103] = np.array([3.0])
    with pytest.raises(ModelOutputError) as err:
        model_with(spec, outs, values).predict(IMG)
    assert f"cannot decode output 0 '{SSD_NAMES[0]}' [1, 10, 4] float32" in str(err.value)
    assert "boxes must have shape (N, 4)" in str(err.value)


def test_a_spec_missing_what_its_decoder_needs_is_an_output_error():
    spec = ModelSpec(task="detect", decoder="ssd_postprocess", input_size=(16, 16))
    values = {
        100 + k: np.zeros(s, "f4") for k, s in enumerate(((1, 10, 4), (1, 10), (1, 10), (1,)))
    }
    with pytest.raises(
        ModelOutputError, match=r"cannot decode outputs 0 .*, 3 .*: missing 'outputs'"
    ):
        model_with(spec, ssd_details(range(4)), values).predict(IMG)


def test_an_interpreter_failure_is_a_model_error():
    class Broken(FakeInterpreter):
        def invoke(self):
            raise RuntimeError("Node number 3 (CONV_2D) failed to invoke.\nmore")

    spec = ModelSpec(task="classify", decoder="classify", input_size=(16, 16))
    it = Broken([detail("in", (1, 16, 16, 3), np.uint8)], [detail("p", (1, 5), index=1)])
    with pytest.raises(
        ModelLoadError, match=r"model.tflite: the interpreter failed: Node number 3"
    ):
        Model(it, spec, backend=INFO, path=Path("model.tflite")).predict(IMG)


# --- labels ----------------------------------------------------------------------------------

IN = [detail("in", (1, 64, 64, 3))]


def test_an_80_class_yolo_head_without_labels_gets_coco_names():
    out = [detail("o", (1, 84, 8400))]
    spec = infer_spec(IN, out)
    labels = assumed_labels(spec, out)
    assert len(labels) == 80 and labels[:3] == ("person", "bicycle", "car")
    assert "COCO-80" in ASSUMED_COCO80
    transposed = [detail("o", (1, 8400, 84))]
    assert assumed_labels(infer_spec(IN, transposed), transposed) == labels
    for shape in ((1, 7, 80), (1, 84, 80)):  # 3 classes; 76 classes as the decoder reads it
        assert assumed_labels(infer_spec(IN, [detail("o", shape)]), [detail("o", shape)]) == ()
    assert assumed_labels(infer_spec(IN, out, labels=tuple("abc")), out) == ()


def test_labels_that_do_not_name_the_outputs_are_reported():
    out = [detail("o", (1, 7, 80))]
    assert label_mismatch(infer_spec(IN, out, labels=("a", "b", "c")), out) is None
    assert label_mismatch(infer_spec(IN, out, labels=("a", "b")), out) == (
        "2 labels for 3 output classes (classes past the last label print without a name)"
    )
    cls = [detail("p", (1, 1001))]
    names = tuple(f"c{i}" for i in range(1000))
    assert label_mismatch(infer_spec(IN, cls, labels=names), cls) is None  # offset -1
    assert "5 labels for 1001" in label_mismatch(infer_spec(IN, cls, labels=names[:5]), cls)


def test_metadata_that_contradicts_the_outputs_is_reported():
    out = [detail("o", (1, 7, 80))]
    spec = infer_spec(IN, out, labels=tuple("abc"))
    meta = ModelMetadata(source="ultralytics", task="classify", input_size=(640, 640))
    warnings = consistency_warnings(spec, out, meta)
    assert warnings == [
        "its metadata says task 'classify', its outputs are a detect model's",
        "its metadata says input 640x640, the input tensor is 64x64 (the tensor is used)",
    ]


@pytest.mark.parametrize("task", ["pose", "segment", "obb"])
def test_ultralytics_tasks_edgekit_cannot_decode_are_refused_by_name(task):
    meta = ModelMetadata(source="ultralytics", task=task)
    with pytest.raises(UnsupportedModelError, match=f"an Ultralytics {task} model"):
        infer_spec(IN, [detail("o", (1, 56, 80))], metadata=meta)


def test_declared_normalization_is_used():
    meta = ModelMetadata(source="tflite-support", normalization=(0.0, 1.0))
    spec = infer_spec([detail("in", (1, 8, 8, 3), np.uint8, (1 / 128, 128))], [detail("p", (1, 4))])
    assert spec.normalization == (127.5, 127.5)
    spec = infer_spec(
        [detail("in", (1, 8, 8, 3), np.uint8, (1 / 128, 128))], [detail("p", (1, 4))], metadata=meta
    )
    assert spec.normalization == (0.0, 1.0)
