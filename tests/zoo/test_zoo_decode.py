"""The in-graph decodes (YOLO grid decode, MoveNet argmax decode) agree with numpy references."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from edgekit.zoo.pose import MoveNetDecode, add_movenet_decode, build_movenet
from edgekit.zoo.yolo import add_yolo_decode, build_yolo_tiny

SIZE = (64, 96)


def yolo_reference(
    distances: np.ndarray, logits: np.ndarray, input_hw, strides=(8, 16, 32), normalized=True
):
    """numpy: (N, 4) l,t,r,b in stride units + (N, C) logits -> (4 + C, N)."""
    h, w = input_hw
    centres, cell_strides = [], []
    for s in strides:
        gh, gw = -(-h // s), -(-w // s)
        for i in range(gh):
            for j in range(gw):
                centres.append(((j + 0.5) * s, (i + 0.5) * s))
                cell_strides.append(s)
    c = np.array(centres, dtype=np.float64)
    s = np.array(cell_strides, dtype=np.float64)[:, None]
    d = distances.astype(np.float64) * s
    x1, y1 = c[:, 0] - d[:, 0], c[:, 1] - d[:, 1]
    x2, y2 = c[:, 0] + d[:, 2], c[:, 1] + d[:, 3]
    boxes = np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=1)
    if normalized:
        boxes /= np.array([w, h, w, h], dtype=np.float64)
    scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    return np.concatenate([boxes, scores], axis=1).T


@pytest.mark.parametrize("normalized", [True, False])
def test_yolo_in_graph_decode_matches_numpy(normalized):
    raw = build_yolo_tiny(5, SIZE, width=0.35, neck_channels=16, decode=False)
    decoded = add_yolo_decode(raw, normalized=normalized)
    x = np.random.default_rng(1).uniform(-1, 1, (2, *SIZE, 3)).astype("float32")
    distances, logits = (np.asarray(o) for o in raw(x, training=False))
    pred = np.asarray(decoded(x, training=False))
    assert pred.shape == (2, 4 + 5, 8 * 12 + 4 * 6 + 2 * 3)
    assert (distances >= 0).all()
    for b in range(2):
        ref = yolo_reference(distances[b], logits[b], SIZE, normalized=normalized)
        np.testing.assert_allclose(pred[b], ref, rtol=1e-5, atol=1e-5 if normalized else 1e-3)


def movenet_reference(center, regression, heatmaps, offsets):
    """numpy MoveNet decode of one image's raw heads (H, W, ·) -> (K, 3) y, x, score."""
    gh, gw = center.shape[:2]
    k = heatmaps.shape[-1]
    ys, xs = np.meshgrid(
        np.arange(gh, dtype=np.float32), np.arange(gw, dtype=np.float32), indexing="ij"
    )
    weight = 1.0 / (1.0 + np.sqrt((ys - (gh - 1) / 2) ** 2 + (xs - (gw - 1) / 2) ** 2))
    cy, cx = np.unravel_index(np.argmax(center[..., 0] * weight), (gh, gw))
    out = np.zeros((k, 3), dtype=np.float32)
    for j in range(k):
        ry = cy + regression[cy, cx, 2 * j]
        rx = cx + regression[cy, cx, 2 * j + 1]
        dist = np.sqrt((ys - ry) ** 2 + (xs - rx) ** 2)
        py, px = np.unravel_index(np.argmax(heatmaps[..., j] / (dist + 1.8)), (gh, gw))
        y = (py + offsets[py, px, 2 * j]) / gh
        x = (px + offsets[py, px, 2 * j + 1]) / gw
        out[j] = (np.clip(y, 0, 1), np.clip(x, 0, 1), heatmaps[py, px, j])
    return out


def test_movenet_in_graph_decode_matches_numpy_on_model_outputs():
    raw = build_movenet(SIZE, width=0.35, fpn_channels=16, decode=False)
    decoded = add_movenet_decode(raw)
    x = np.random.default_rng(2).uniform(-1, 1, (2, *SIZE, 3)).astype("float32")
    heads = [np.asarray(o) for o in raw(x, training=False)]
    kps = np.asarray(decoded(x, training=False))
    assert kps.shape == (2, 1, 17, 3)
    for b in range(2):
        ref = movenet_reference(*(h[b] for h in heads))
        np.testing.assert_allclose(kps[b, 0], ref, atol=1e-5)


def test_movenet_decode_on_random_heads():
    """Random heads (not from a network): the decode layer alone against numpy, several draws."""
    rng = np.random.default_rng(3)
    gh, gw, k = 12, 10, 17
    layer = MoveNetDecode(k)
    for _ in range(5):
        center = rng.uniform(0, 1, (1, gh, gw, 1)).astype("float32")
        regression = rng.normal(0, 3, (1, gh, gw, 2 * k)).astype("float32")
        heatmaps = rng.uniform(0, 1, (1, gh, gw, k)).astype("float32")
        offsets = rng.uniform(0, 1, (1, gh, gw, 2 * k)).astype("float32")
        got = np.asarray(layer(center, regression, heatmaps, offsets))
        ref = movenet_reference(center[0], regression[0], heatmaps[0], offsets[0])
        np.testing.assert_allclose(got[0, 0], ref, atol=1e-5)


def test_movenet_decode_recovers_a_planted_pose():
    gh, gw, k = 16, 16, 17
    rng = np.random.default_rng(4)
    truth = rng.uniform(0.05, 0.95, (k, 2)).astype("float32")  # normalized y, x
    center = np.zeros((1, gh, gw, 1), "float32")
    center[0, 8, 7, 0] = 0.9
    regression = np.zeros((1, gh, gw, 2 * k), "float32")
    heatmaps = np.full((1, gh, gw, k), 0.01, "float32")
    offsets = np.zeros((1, gh, gw, 2 * k), "float32")
    for j, (y, x) in enumerate(truth):
        gy, gx = y * gh, x * gw
        cy, cx = int(gy), int(gx)
        regression[0, 8, 7, 2 * j : 2 * j + 2] = (gy - 8, gx - 7)
        heatmaps[0, cy, cx, j] = 0.8
        offsets[0, cy, cx, 2 * j : 2 * j + 2] = (gy - cy, gx - cx)
    got = np.asarray(MoveNetDecode(k)(center, regression, heatmaps, offsets))[0, 0]
    np.testing.assert_allclose(got[:, :2], truth, atol=1e-5)
    np.testing.assert_allclose(got[:, 2], 0.8, atol=1e-6)


def test_decoded_models_survive_a_keras_save_and_load(tmp_path):
    import keras

    x = np.random.default_rng(5).uniform(-1, 1, (1, 64, 64, 3)).astype("float32")
    for model in (
        build_yolo_tiny(2, 64, width=0.35, neck_channels=16),
        build_movenet(64, width=0.35, fpn_channels=16),
    ):
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        loaded = keras.saving.load_model(path, compile=False)
        assert loaded.name == model.name
        np.testing.assert_allclose(
            np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False)), atol=1e-6
        )


def test_movenet_decode_converts_to_a_gather_tail_that_matches_numpy():
    """In TFLite the decode is ARG_MAX + GATHER (no one-hot products summed over the grid) and
    gives the numpy reference's keypoints."""
    import keras
    import tensorflow as tf

    from edgekit.core.flatbuffer import read_tflite
    from edgekit.runtime.interpreter import resolve_backend

    gh, gw, k = 12, 10, 17
    heads = {"center": 1, "regression": 2 * k, "heatmaps": k, "offsets": 2 * k}
    inputs = [keras.Input((gh, gw, c), batch_size=1, name=n) for n, c in heads.items()]
    model = keras.Model(inputs, MoveNetDecode(k)(*inputs))
    flat = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    ops = {op.op for op in read_tflite(flat).main.operators}
    assert {"ARG_MAX", "GATHER"} <= ops and "ONE_HOT" not in ops
    interpreter = resolve_backend().interpreter_cls(model_content=flat)
    interpreter.allocate_tensors()
    index = {
        n: d["index"] for d in interpreter.get_input_details() for n in heads if n in d["name"]
    }
    rng = np.random.default_rng(6)
    for _ in range(3):
        values = {
            "center": rng.uniform(0, 1, (1, gh, gw, 1)),
            "regression": rng.normal(0, 3, (1, gh, gw, 2 * k)),
            "heatmaps": rng.uniform(0, 1, (1, gh, gw, k)),
            "offsets": rng.uniform(0, 1, (1, gh, gw, 2 * k)),
        }
        values = {n: v.astype("float32") for n, v in values.items()}
        for n, v in values.items():
            interpreter.set_tensor(index[n], v)
        interpreter.invoke()
        got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        ref = movenet_reference(*(v[0] for v in values.values()))
        np.testing.assert_allclose(got[0, 0], ref, atol=1e-5)


def test_take_rows_outside_tensorflow_matches_the_gather(monkeypatch):
    """The keras.ops route of take_rows (other backends) picks the same entries."""
    import keras

    from edgekit.zoo.layers import take_rows

    rng = np.random.default_rng(7)
    params = rng.normal(size=(2, 9, 3)).astype("float32")
    flat = params[..., 0]
    rows, many = np.array([4, 0]), np.array([[1, 8, 3], [2, 2, 0]])
    want = [
        params[[0, 1], rows],
        params[np.arange(2)[:, None], many],
        flat[np.arange(2)[:, None], many],
    ]
    gathered = [take_rows(params, rows), take_rows(params, many), take_rows(flat, many)]
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    taken = [take_rows(params, rows), take_rows(params, many), take_rows(flat, many)]
    for w, g, t in zip(want, gathered, taken, strict=True):
        np.testing.assert_allclose(np.asarray(g), w)
        np.testing.assert_allclose(np.asarray(t), w)
