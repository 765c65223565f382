"""edgekit import: TFLite graph -> float Keras model (exact on float graphs, within the
quantization error on integer ones), family tails, anchors, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tf

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from edgekit.core.anchors import ssd_anchors  # noqa: E402
from edgekit.core.flatbuffer import read_tflite  # noqa: E402
from edgekit.errors import ModelLoadError, UnsupportedModelError  # noqa: E402
from edgekit.zoo.importer import (  # noqa: E402
    agreement,
    import_tflite,
    match_anchor_generator,
    save_imported,
)
from edgekit.zoo.tflite_graph import layer_name, translate_graph  # noqa: E402

SSD = "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
MOVENET = "movenet_single_pose_lightning_ptq.tflite"


def _every_op_net() -> keras.Model:
    """A small image net with every op family the importer translates."""
    L = keras.layers
    x = inp = keras.Input((32, 32, 3), batch_size=1)
    x = L.ZeroPadding2D(((0, 1), (0, 1)))(x)
    x = L.Conv2D(8, 3, strides=2, padding="valid", activation="relu6")(x)
    y = L.DepthwiseConv2D(3, padding="same")(x)
    x = L.Add()([x, y])
    x = L.Conv2D(8, 1, activation="relu")(x) * 0.5 + 1.0
    up = L.UpSampling2D(interpolation="bilinear")(L.AveragePooling2D(2)(x))
    x = L.Concatenate()([x, up])
    head = L.Reshape((-1, 4))(L.Conv2D(8, 1)(x))
    pooled = L.Dense(5, activation="softmax")(L.GlobalAveragePooling2D()(x))
    return keras.Model(inp, [L.Activation("sigmoid")(head), pooled])


def _float_tflite(model: keras.Model) -> bytes:
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def test_float_graph_translates_exactly():
    model = _every_op_net()
    graph = read_tflite(_float_tflite(model))
    imported = translate_graph(graph, graph.main.outputs)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    want = {tuple(np.asarray(o).shape): np.asarray(o) for o in model(x)}
    got = imported(x)
    for y in got if isinstance(got, (list, tuple)) else [got]:
        np.testing.assert_allclose(np.asarray(y), want[tuple(np.asarray(y).shape)], atol=2e-5)


def test_unsupported_op_is_named():
    inp = keras.Input((8, 8, 3), batch_size=1)
    out = keras.layers.Conv2D(4, 1)(keras.layers.Lambda(tf.math.sin)(inp))
    data = _float_tflite(keras.Model(inp, out))
    with pytest.raises(UnsupportedModelError, match=r"operator 0 SIN.*cannot be imported"):
        translate_graph(read_tflite(data), read_tflite(data).main.outputs)


def test_import_names_the_file_when_it_is_not_a_model(tmp_path: Path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ModelLoadError, match=r"x\.tflite"):
        import_tflite(bad)


def test_layer_names_are_readable_and_valid():
    assert layer_name("FeatureExtractor/MobilenetV1/MobilenetV1/Conv2d_3_depthwise/Relu6") == (
        "MobilenetV1_Conv2d_3_depthwise"
    )
    assert layer_name("a/model/block_7_expand_relu/Relu6;a/other") == "model_block_7_expand"
    assert layer_name("123/;") == "t_123"


def test_anchor_generator_is_recognised_and_random_anchors_are_not():
    anchors = ssd_anchors(300, [19, 10, 5, 3, 2, 1])
    kwargs, stride = match_anchor_generator((300, 300), anchors + 1e-5)
    assert stride == 16 and kwargs["feature_sizes"][0] == [19, 19]
    np.testing.assert_allclose(ssd_anchors(**kwargs), anchors, atol=1e-6)
    rng = np.random.default_rng(0)
    assert match_anchor_generator((300, 300), rng.uniform(size=anchors.shape)) is None


def _images(shared, n: int) -> list[np.ndarray]:
    import cv2

    paths = sorted(shared("coco128", "images").glob("*.jpg"))[:n]
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]


@pytest.mark.shared
def test_ssd_teacher_imports_within_its_quantization_error(shared, tmp_path: Path):
    imported = import_tflite(shared("models", SSD))
    assert imported.family == "ssd" and imported.spec.decoder == "ssd_raw"
    assert imported.replaced_ops == {"LOGISTIC": 1, "TFLite_Detection_PostProcess": 1}
    params = imported.spec.decoder_params
    assert isinstance(params["anchors"], dict) and params["num_anchors"] == 1917
    assert params["scales"] == [10.0, 10.0, 5.0, 5.0] and imported.spec.labels[0] == "person"
    result = agreement(imported, _images(shared, 4))
    for out in result.outputs:  # raw outputs within about one quantization step (RMSE)
        assert out.unit == "steps" and out.rmse < 1.5, out
    assert result.task["detections_found"] >= 0.9
    path = save_imported(imported, tmp_path / "teacher.keras")
    assert path.with_suffix(".spec.json").is_file()


@pytest.mark.shared
def test_movenet_imports_with_edgekit_decoder(shared):
    import cv2

    imported = import_tflite(shared("models", MOVENET))
    assert imported.family == "movenet" and imported.spec.task == "pose"
    shapes = [tuple(o.shape[1:]) for o in imported.raw.outputs]
    assert shapes == [(48, 48, 1), (48, 48, 34), (48, 48, 17), (48, 48, 34)]
    assert "ARG_MAX" in imported.replaced_ops and "GATHER_ND" in imported.replaced_ops
    squat = cv2.cvtColor(cv2.imread(str(shared("images", "squat.bmp"))), cv2.COLOR_BGR2RGB)
    result = agreement(imported, [squat])
    assert all(o.unit == "steps" and o.rmse < 4.0 for o in result.outputs)
    assert result.task["keypoints_within_0.02"] >= 0.8


def test_edgekit_own_exports_import_too():
    from pathlib import Path as P

    assets = P(__file__).resolve().parents[2] / "edgekit" / "assets"
    det = import_tflite(assets / "detect_default.tflite")
    assert det.family == "ssd" and det.spec.labels == ("person",)
    pose = import_tflite(assets / "pose_default.tflite")  # decode tail: ARG_MAX + GATHER
    assert pose.family == "movenet" and "GATHER" in pose.replaced_ops


@pytest.mark.shared
def test_imported_ssd_reexported_to_int8_keeps_the_detections(shared, tmp_path: Path):
    from edgekit.core.boxes import iou
    from edgekit.export.tflite import ExportConfig, export_model
    from edgekit.runtime.model import Model

    imported = import_tflite(shared("models", SSD))
    calib = shared("coco128", "images")
    res = export_model(
        imported.model,
        imported.spec,
        ExportConfig(format="int8", out=tmp_path / "re.tflite", nms=True, calib_dir=calib,
                     calib_samples=20),
    )  # fmt: skip
    original, again = Model.load(shared("models", SSD)), Model.load(res.path)
    kept = total = 0
    for image in _images(shared, 6)[1:]:
        ref = original.predict(image, score_threshold=0.5).detections
        new = again.predict(image, score_threshold=0.3).detections
        for d in ref:
            total += 1
            same = [n.box for n in new if n.class_id == d.class_id]
            kept += bool(same) and float(iou(np.array([d.box]), np.array(same)).max()) >= 0.5
    assert total >= 5 and kept / total >= 0.9
