"""NMS inside the model: SSD via TFLite_Detection_PostProcess, YOLO via NON_MAX_SUPPRESSION_V4/V5.

Tiny hand-built detectors keep each conversion to seconds. The in-model NMS result is checked
against the runtime's numpy decoding of the same model exported without NMS.
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from edgekit.core.anchors import ssd_anchors  # noqa: E402
from edgekit.core.boxes import iou  # noqa: E402
from edgekit.core.flatbuffer import read_tflite_file  # noqa: E402
from edgekit.core.types import ModelSpec  # noqa: E402
from edgekit.data.images import read_rgb  # noqa: E402
from edgekit.export.nms import NMSConfig  # noqa: E402
from edgekit.export.tflite import ExportConfig, export_model  # noqa: E402
from edgekit.io.sources import sample_images as sample_photos  # noqa: E402
from edgekit.runtime.model import Model  # noqa: E402

pytestmark = pytest.mark.tf

SIZE = 64
C = 3
LABELS = ("cat", "dog", "bird")


def _convs(inp):
    x = keras.layers.Conv2D(16, 3, strides=4, padding="same", activation="relu")(inp)
    return keras.layers.Conv2D(32, 3, strides=4, padding="same", activation="relu")(x)  # 4x4


def tiny_ssd():
    anchor_kwargs = {
        "input_size": [SIZE, SIZE],
        "feature_sizes": [[4, 4]],
        "min_scale": 0.3,
        "max_scale": 0.9,
    }
    anchors = ssd_anchors(**anchor_kwargs)
    per_cell = anchors.shape[0] // 16
    keras.utils.set_random_seed(1)
    inp = keras.Input((SIZE, SIZE, 3))
    x = _convs(inp)
    boxes = keras.layers.Reshape((-1, 4), name="box_encodings")(
        keras.layers.Conv2D(per_cell * 4, 1)(x)
    )
    logits = keras.layers.Reshape((-1, C + 1), name="class_logits")(
        keras.layers.Conv2D(per_cell * (C + 1), 1)(x)
    )
    model = keras.Model(inp, [boxes, logits], name="tiny_ssd")
    spec = ModelSpec(
        task="detect",
        decoder="ssd_raw",
        input_size=(SIZE, SIZE),
        normalization=(127.5, 127.5),
        labels=LABELS,
        decoder_params={
            "anchors": anchor_kwargs,
            "scales": [10.0, 10.0, 5.0, 5.0],
            "has_background": True,
            "scores_are_logits": True,
            "activation": "sigmoid",
            "output_names": ["box_encodings", "class_logits"],
        },
        name="tiny_ssd",
    )
    return model, spec


def tiny_yolo():
    keras.utils.set_random_seed(2)
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4 + C, 1, activation="sigmoid")(
        _convs(inp)
    )  # cx, cy, w, h, scores in [0, 1]
    x = keras.layers.Reshape((16, 4 + C))(x)
    out = keras.layers.Permute((2, 1), name="predictions")(x)  # [1, 4+C, N]
    model = keras.Model(inp, out, name="tiny_yolo")
    spec = ModelSpec(
        task="detect",
        decoder="yolo",
        input_size=(SIZE, SIZE),
        normalization=(0.0, 255.0),
        resize_mode="letterbox",
        labels=LABELS,
        decoder_params={"box_format": "cxcywh", "normalized": True},
        name="tiny_yolo",
    )
    return model, spec


def _top(model_path, photo, **kw):
    dets = (
        Model.load(model_path)
        .predict(photo, score_threshold=0.01, iou_threshold=0.5, **kw)
        .detections
    )
    return sorted(dets, key=lambda d: -d.score)


@pytest.mark.parametrize("builder", [tiny_ssd, tiny_yolo], ids=["ssd", "yolo"])
def test_float_nms_matches_numpy_decoding(builder, tmp_path):
    model, spec = builder()
    photo = read_rgb(sample_photos()[0])
    raw = export_model(model, spec, ExportConfig(format="float32", out=tmp_path / "raw.tflite"))
    cfg = NMSConfig(max_detections=10, score_threshold=0.01, iou_threshold=0.5)
    nms = export_model(
        model,
        spec,
        ExportConfig(format="float32", nms=True, nms_config=cfg, out=tmp_path / "nms.tflite"),
    )
    expected = "ssd_postprocess" if spec.decoder == "ssd_raw" else "yolo_nms"
    assert nms.spec.decoder == expected
    ops = read_tflite_file(nms.path).op_histogram()
    if expected == "ssd_postprocess":
        assert ops.get("TFLite_Detection_PostProcess") == 1
    else:
        assert ops.get("NON_MAX_SUPPRESSION_V4") == 1
    assert not any(op.startswith("Flex") for op in ops)

    ours, ref = _top(nms.path, photo), _top(raw.path, photo)
    assert 1 <= len(ours) <= 10 and ref
    best, want = ours[0], ref[0]
    assert best.class_id == want.class_id and best.label == want.label
    assert best.score == pytest.approx(want.score, abs=1e-4)
    assert iou(np.array([best.box]), np.array([want.box]))[0, 0] > 0.99


def test_yolo_nms_v5_converts_with_builtin_ops(tmp_path):
    model, spec = tiny_yolo()
    cfg = NMSConfig(max_detections=5, score_threshold=0.01, yolo_op="v5")
    result = export_model(
        model,
        spec,
        ExportConfig(format="float32", nms=True, nms_config=cfg, out=tmp_path / "v5.tflite"),
    )
    assert read_tflite_file(result.path).op_histogram().get("NON_MAX_SUPPRESSION_V5") == 1
    assert len(_top(result.path, read_rgb(sample_photos()[1]))) <= 5


def test_int8_ssd_with_nms_keeps_body_integer(tmp_path):
    model, spec = tiny_ssd()
    photo = read_rgb(sample_photos()[0])
    cfg = NMSConfig(max_detections=10, score_threshold=0.01)
    result = export_model(
        model,
        spec,
        ExportConfig(
            format="int8", nms=True, nms_config=cfg, calib_samples=16, out=tmp_path / "q.tflite"
        ),
    )
    assert result.spec.decoder == "ssd_postprocess" and result.spec.input_dtype == "uint8"
    report = result.edgetpu_report
    assert report["edgetpu_ready"]
    tail = [op["op"] for op in report["ops"] if op["status"] == "cpu_tail"]
    assert "TFLite_Detection_PostProcess" in tail
    assert all(op["status"] in ("mappable", "cpu_tail") for op in report["ops"])
    float_ref = export_model(
        model,
        spec,
        ExportConfig(format="float32", nms=True, nms_config=cfg, out=tmp_path / "f.tflite"),
    )
    ours, ref = _top(result.path, photo), _top(float_ref.path, photo)
    assert ours and ref and ours[0].class_id == ref[0].class_id
    assert iou(np.array([ours[0].box]), np.array([ref[0].box]))[0, 0] > 0.8
