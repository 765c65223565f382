"""Grad-CAM (``edgekit explain``): geometry back to the frame, localization on a trained tiny
classifier, the detector path, the PNG the command writes, one-line errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgekit.cli.main import main
from edgekit.core.letterbox import letterbox_transform, resize_transform
from edgekit.errors import SourceError, UnsupportedModelError, UsageError
from edgekit.eval.explain import (
    ExplainConfig,
    explain,
    heatmap_to_frame,
    load_explainable,
    overlay_heatmap,
)

COLORS = np.array([[230, 40, 40], [40, 230, 40], [40, 40, 230]], np.uint8)  # red, green, blue
LABELS = ("red", "green", "blue")


def patches(rng: np.random.Generator, n: int, size: int = 64, patch: int = 16):
    """Dark noise with one bright square wholly inside one quadrant; the class is its colour
    and the quadrant is random, so only where the patch lies says where to look."""
    x = rng.integers(0, 60, (n, size, size, 3)).astype(np.uint8)
    y = rng.integers(0, 3, n)
    q = rng.integers(0, 4, n)
    half = size // 2
    for i in range(n):
        qy, qx = divmod(int(q[i]), 2)
        oy = qy * half + rng.integers(0, half - patch + 1)
        ox = qx * half + rng.integers(0, half - patch + 1)
        x[i, oy : oy + patch, ox : ox + patch] = COLORS[y[i]]
    return x, y, q


def quadrant_share(heat: np.ndarray, q: int) -> float:
    h, w = heat.shape
    qy, qx = divmod(q, 2)
    part = heat[qy * h // 2 : (qy + 1) * h // 2, qx * w // 2 : (qx + 1) * w // 2]
    return float((part**2).sum() / (heat**2).sum())


# --- geometry (no TensorFlow) ------------------------------------------------------------------


def test_heatmap_follows_the_letterbox():
    """A map linear in y and x over a 4x4 grid, through a letterbox (32 rows of padding):
    bilinear sampling of a linear map is exact, so every frame pixel is checked."""
    t = letterbox_transform((50, 100), (64, 64))
    assert (t.pad_y, t.resized_hw) == (16, (32, 64))
    gy, gx = np.mgrid[0:4, 0:4].astype(np.float32)
    heat_y = heatmap_to_frame(gy, t)
    heat_x = heatmap_to_frame(gx, t)
    assert heat_y.shape == (50, 100)
    rows = (np.arange(50) + 0.5) / 50
    expected_y = (16 + rows * 32) / 64 * 4 - 0.5  # skips the padding: grid rows 0.5 .. 2.5
    np.testing.assert_allclose(heat_y, np.repeat(expected_y[:, None], 100, 1), atol=1e-4)
    cols = (np.arange(100) + 0.5) / 100 * 4 - 0.5
    inner = (cols >= 0) & (cols <= 3)
    np.testing.assert_allclose(heat_x[:, inner], np.tile(cols[inner], (50, 1)), atol=1e-4)


def test_heatmap_hot_cell_lands_on_its_frame_region():
    cam = np.zeros((4, 4), np.float32)
    cam[3, 0] = 1.0  # bottom-left cell of the model input
    heat = heatmap_to_frame(cam, resize_transform((90, 160), (64, 64)))
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    assert y > 90 * 3 / 4 - 2 and x < 160 / 4 + 2


def test_overlay_blends_and_outlines():
    img = np.full((40, 60, 3), 100, np.uint8)
    heat = np.zeros((40, 60), np.float32)
    assert np.array_equal(overlay_heatmap(img, heat, alpha=0.0), img)
    out = overlay_heatmap(img, np.ones_like(heat), alpha=1.0, box=(0.25, 0.25, 0.75, 0.75))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert tuple(out[5, 5]) == (128, 0, 0)  # JET at 1.0, in RGB
    assert tuple(out[10, 15]) == (0, 200, 0)  # the box outline
    with pytest.raises(ValueError, match="does not match"):
        overlay_heatmap(img, heat[:10])


# --- Keras models -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_classifier():
    """A 4-conv classifier (8x8 last map at 64 px) trained for 64 steps on the patch images."""
    keras = pytest.importorskip("keras")
    from edgekit.core.types import ModelSpec
    from edgekit.runtime.interpreter import BackendInfo
    from edgekit.runtime.model import Model
    from edgekit.zoo.keras_runtime import KerasInterpreter

    L = keras.layers
    keras.utils.set_random_seed(0)
    inp = keras.Input((64, 64, 3), name="image")
    h = L.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inp)
    h = L.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="conv2")(h)
    h = L.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="conv3")(h)
    h = L.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="features")(h)
    h = L.GlobalAveragePooling2D(name="avg_pool")(h)
    h = L.Dense(3, name="logits")(h)
    km = keras.Model(inp, L.Softmax(name="predictions")(h), name="tiny")
    km.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    x, y, _ = patches(np.random.default_rng(0), 1024)
    km.fit((x.astype(np.float32) - 127.5) / 127.5, y, batch_size=32, epochs=2, verbose=0)
    spec = ModelSpec(
        task="classify",
        decoder="classify",
        input_size=(64, 64),
        input_dtype="float32",
        normalization=(127.5, 127.5),
        resize_mode="resize",
        labels=LABELS,
    )
    return Model(KerasInterpreter(km), spec, backend=BackendInfo("keras", 1))


def test_gradcam_mass_lies_in_the_patch_quadrant(tiny_classifier):
    from edgekit.eval.explain import explain_image

    x, y, q = patches(np.random.default_rng(1), 12)
    assert set(q.tolist()) == {0, 1, 2, 3}
    for img, cls, quad in zip(x, y, q, strict=True):
        frame = cv2.resize(img, (120, 80), interpolation=cv2.INTER_NEAREST)  # not the input size
        e = explain_image(tiny_classifier, frame)
        assert e.heatmap.shape == (80, 120) and e.layer == "features"
        assert e.label == LABELS[cls] and e.score > 0.9
        assert quadrant_share(e.heatmap, int(quad)) > 0.5, (cls, quad)


def test_class_and_layer_choices(tiny_classifier):
    from edgekit.eval.explain import explain_image

    x, _, _ = patches(np.random.default_rng(2), 1)
    by_name = explain_image(tiny_classifier, x[0], target_class="Blue")
    by_id = explain_image(tiny_classifier, x[0], target_class="2", layer="conv3")
    assert by_name.class_id == by_id.class_id == 2 and by_name.label == "blue"
    assert by_id.layer == "conv3" and by_id.cam.shape == (16, 16)
    with pytest.raises(UsageError, match=r"unknown class 'purple'.*labels: red, green, blue"):
        explain_image(tiny_classifier, x[0], target_class="purple")
    with pytest.raises(UsageError, match="out of range"):
        explain_image(tiny_classifier, x[0], target_class=3)
    with pytest.raises(UsageError, match=r"no layer 'conv9'.*features"):
        explain_image(tiny_classifier, x[0], layer="conv9")
    with pytest.raises(UsageError, match="needs a 4-D feature map"):
        explain_image(tiny_classifier, x[0], layer="logits")
    with pytest.raises(UsageError, match="--box applies to detectors"):
        explain_image(tiny_classifier, x[0], box=1)


def two_squares(rng: np.random.Generator, n: int, size: int = 64):
    """Dark noise with two bright squares in opposite quadrants; their boxes (normalized xyxy)."""
    x = rng.integers(0, 60, (n, size, size, 3)).astype(np.uint8)
    half, boxes = size // 2, []
    for i in range(n):
        qa = int(rng.integers(0, 4))
        pair = []
        for q in (qa, 3 - qa):
            s = int(rng.integers(14, 22))
            qy, qx = divmod(q, 2)
            oy = qy * half + int(rng.integers(0, half - s + 1))
            ox = qx * half + int(rng.integers(0, half - s + 1))
            x[i, oy : oy + s, ox : ox + s] = 230
            pair.append([ox / size, oy / size, (ox + s) / size, (oy + s) / size])
        boxes.append(np.array(pair))
    return x, boxes


def box_share(heat: np.ndarray, box: np.ndarray, margin: int = 6) -> float:
    h, w = heat.shape
    x0, y0, x1, y1 = (np.asarray(box) * [w, h, w, h]).round().astype(int)
    part = heat[max(0, y0 - margin) : y1 + margin, max(0, x0 - margin) : x1 + margin]
    return float((part**2).sum() / (heat**2).sum())


@pytest.fixture(scope="module")
def tiny_ssd():
    """An SSD with the zoo's head layout (class_head_{i}_dw/_reshape, class_logits) on 8x8 and
    4x4 maps, trained for 96 steps on one bright square per image with the zoo's SSD losses."""
    keras = pytest.importorskip("keras")
    from edgekit.core.anchors import anchors_from_params, num_anchors_per_location
    from edgekit.core.types import ModelSpec
    from edgekit.data.encode import ssd_encode
    from edgekit.runtime.interpreter import BackendInfo
    from edgekit.runtime.model import Model
    from edgekit.train.losses import losses_for
    from edgekit.zoo.keras_runtime import KerasInterpreter

    L = keras.layers
    keras.utils.set_random_seed(0)
    scales = {"min_scale": 0.25, "max_scale": 0.5, "aspect_ratios": [1.0]}
    kw = {"reduce_boxes_in_lowest_layer": False, **scales}
    per = num_anchors_per_location(2, **{**kw, "aspect_ratios": (1.0,)})
    inp = keras.Input((64, 64, 3), name="image")
    h = L.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv1")(inp)
    h = L.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="conv2")(h)
    m0 = L.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="map0")(h)
    m1 = L.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="map1")(m0)
    boxes, classes = [], []
    for i, (fm, n) in enumerate(zip((m0, m1), per, strict=True)):
        cells = int(fm.shape[1]) * int(fm.shape[2]) * n
        for kind, depth, bias, out in (("box", 4, 0.0, boxes), ("class", 2, -4.6, classes)):
            t = L.DepthwiseConv2D(3, padding="same", activation="relu", name=f"{kind}_head_{i}_dw")
            init = keras.initializers.Constant(bias)  # the focal-loss prior for the classes
            t = L.Conv2D(n * depth, 1, bias_initializer=init, name=f"{kind}_head_{i}")(t(fm))
            out.append(L.Reshape((cells, depth), name=f"{kind}_head_{i}_reshape")(t))
    km = keras.Model(
        inp,
        [
            L.Concatenate(axis=1, name="box_encodings")(boxes),
            L.Concatenate(axis=1, name="class_logits")(classes),
        ],
        name="tiny_ssd",
    )
    params = {
        "anchors": {"input_size": [64, 64], "feature_sizes": [[8, 8], [4, 4]], **kw},
        "scales": [10, 10, 5, 5],
        "has_background": True,
        "scores_are_logits": True,
        "activation": "sigmoid",
        "output_names": ["box_encodings", "class_logits"],
    }
    anchors = anchors_from_params(params)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 60, (1024, 64, 64, 3)).astype(np.uint8)
    box_t, cls_t = [], []
    for img in x:
        s = int(rng.integers(14, 22))
        oy, ox = rng.integers(0, 64 - s, 2)
        img[oy : oy + s, ox : ox + s] = 230
        b, c = ssd_encode(np.array([[ox, oy, ox + s, oy + s]]) / 64, np.zeros(1, int), anchors)
        box_t.append(b)
        cls_t.append(c[:, None])
    losses, weights = losses_for("ssd")
    km.compile(keras.optimizers.Adam(3e-3), loss=losses, loss_weights=weights)
    km.fit(
        (x.astype(np.float32) - 127.5) / 127.5,
        [np.stack(box_t), np.stack(cls_t)],
        batch_size=32,
        epochs=3,
        verbose=0,
    )
    spec = ModelSpec(
        task="detect",
        decoder="ssd_raw",
        input_size=(64, 64),
        input_dtype="float32",
        normalization=(127.5, 127.5),
        resize_mode="resize",
        labels=("square",),
        decoder_params=params,
    )
    return Model(KerasInterpreter(km), spec, backend=BackendInfo("keras", 1))


def test_detector_heat_lies_on_the_explained_box(tiny_ssd):
    """Two squares: each detection's heat (default HiResCAM) lies on its own square, not the
    other; the plain Grad-CAM path runs too and gives a map of the image size."""
    from edgekit.core.boxes import iou
    from edgekit.eval.explain import explain_image

    x, boxes = two_squares(np.random.default_rng(1), 4)
    for img, pair in zip(x, boxes, strict=True):
        frame = cv2.resize(img, (128, 128), interpolation=cv2.INTER_NEAREST)
        for k in (0, 1):
            e = explain_image(tiny_ssd, frame, box=k)
            assert e.method == "hirescam" and e.layer == "map0" and e.heatmap.shape == (128, 128)
            overlap = iou(np.array([e.box]), pair)[0]
            own = int(np.argmax(overlap))
            assert overlap[own] > 0.5 and e.score > 0.3
            assert box_share(e.heatmap, pair[own]) > 0.5 > box_share(e.heatmap, pair[1 - own])
    plain = explain_image(tiny_ssd, x[0], method="gradcam")
    assert plain.method == "gradcam" and plain.heatmap.shape == (64, 64)


@pytest.fixture(scope="module")
def ssd():
    pytest.importorskip("tensorflow")
    return load_explainable("ssdlite_mobilenet_v2", input_size=96)


def test_detector_explains_the_decoded_detection(ssd):
    from edgekit.eval.explain import _scale_map, explain_image

    km = ssd.interpreter.keras_model
    img = (np.random.default_rng(3).random((70, 110, 3)) * 255).astype(np.uint8)
    top = ssd.predict(img, score_threshold=0.0, max_results=100).detections
    scale_maps = {_scale_map(km, "ssd_raw", a) for a in range(int(km.outputs[1].shape[1]))}
    assert len(scale_maps) == 6  # one map per SSD scale
    for k in (0, 4):
        e = explain_image(ssd, img, box=k)
        assert e.heatmap.shape == (70, 110) and e.task == "detect"
        assert e.box == top[k].box and e.class_id == top[k].class_id
        assert e.layer in scale_maps and e.detection_index == k
    first = _scale_map(km, "ssd_raw", 0)
    assert first == km.get_layer("class_head_0_dw").input._keras_history[0].name
    with pytest.raises(UsageError, match="no detection #500"):
        explain_image(ssd, img, box=500)
    e = explain_image(ssd, img, layer="out_relu")
    assert e.layer == "out_relu" and e.heatmap.shape == (70, 110)


# --- the command ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    pytest.importorskip("tensorflow")
    from edgekit.zoo.registry import create_model

    path = tmp_path_factory.mktemp("explain") / "mobilenet_v2_patches.keras"
    create_model("mobilenet_v2", num_classes=3, input_size=64, width=0.35).save(path)
    return path


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.jpg"
    x, _, _ = patches(np.random.default_rng(4), 1)
    cv2.imwrite(str(path), cv2.resize(x[0], (150, 90)))
    return path


def test_cli_writes_a_png_of_the_image_size(checkpoint, photo, tmp_path, capsys):
    out = tmp_path / "cam" / "out.png"
    code = main(["explain", str(checkpoint), str(photo), "--out", str(out), "--class", "1"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "explained: class 1 score" in printed and "layer out_relu (2x2x" in printed
    img = cv2.imread(str(out))
    assert img is not None and img.shape == (90, 150, 3)
    assert f"wrote {out} (150x90)" in printed


def test_config_without_out_writes_nothing(checkpoint, photo, tmp_path):
    e = explain(ExplainConfig(model=checkpoint, image=photo, labels=("a", "b", "c")))
    assert e.out is None and e.label in ("a", "b", "c") and e.heatmap.shape == (90, 150)
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["{model}", "{missing}"], 4, "image not found"),
        (["{tflite}", "{photo}"], 3, "Keras checkpoint"),
        (["not_a_model", "{photo}"], 3, "not a zoo model name"),
        (["{model}", "{photo}", "--class", "cat"], 2, "unknown class 'cat'"),
        (["{model}", "{photo}", "--layer", "nope"], 2, "no layer 'nope'"),
        (["{model}", "{photo}", "--out", "{png}.jpg"], 2, "use a .png name"),
    ],
)
def test_errors_are_one_liners(checkpoint, photo, tmp_path, capsys, args, code, words):
    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(b"TFL3")
    values = {
        "model": str(checkpoint),
        "missing": str(tmp_path / "nope.jpg"),
        "tflite": str(tflite),
        "photo": str(photo),
        "png": str(tmp_path / "x"),
    }
    rc = main(["explain", *[a.format(**values) for a in args]])
    err = capsys.readouterr().err
    assert rc == code and err.count("\n") == 1 and err.startswith("edgekit: error:"), err
    assert words in err


def test_library_errors_are_typed(photo, tmp_path):
    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(b"TFL3")
    with pytest.raises(UnsupportedModelError, match="Grad-CAM needs gradients"):
        load_explainable(tflite)
    with pytest.raises(SourceError, match="image not found"):
        explain(ExplainConfig(model=tflite, image=tmp_path / "none.png"))
