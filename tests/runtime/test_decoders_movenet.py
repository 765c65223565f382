"""MoveNet SinglePose decoder."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from edgekit.runtime.decoders.movenet import decode
from edgekit.runtime.preprocess import dequantize


def _kps():
    rng = np.random.default_rng(0)
    k = np.zeros((1, 1, 17, 3))
    k[0, 0, :, 0] = rng.uniform(0.2, 0.8, 17)  # y
    k[0, 0, :, 1] = rng.uniform(0.3, 0.6, 17)  # x
    k[0, 0, :, 2] = np.linspace(0.0, 0.8, 17)
    return k


def test_decode_swaps_to_xy_and_scores():
    k = _kps()
    pose = decode(k)
    assert len(pose.keypoints) == 17
    assert pose.keypoints[3].x == pytest.approx(k[0, 0, 3, 1])
    assert pose.keypoints[3].y == pytest.approx(k[0, 0, 3, 0])
    assert pose.keypoints[3].score == pytest.approx(k[0, 0, 3, 2])
    assert pose.score == pytest.approx(0.4)


def test_box_of_confident_keypoints():
    k = _kps()
    pose = decode(k, box_score_threshold=0.5)
    sel = k[0, 0, k[0, 0, :, 2] >= 0.5]
    assert pose.box == pytest.approx(
        (sel[:, 1].min(), sel[:, 0].min(), sel[:, 1].max(), sel[:, 0].max())
    )
    assert decode(k, box_score_threshold=None).box is None
    assert decode(k, box_score_threshold=0.99).box is None


def test_accepts_shapes_and_clips():
    k = _kps()
    assert decode(k[0]) == decode(k) == decode(k[0, 0])
    k[0, 0, 0] = (1.7, -0.2, np.nan)
    pose = decode(k)
    kp = pose.keypoints[0]
    assert (kp.x, kp.y, kp.score) == (0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="MoveNet"):
        decode(np.zeros((1, 17, 2)))
    with pytest.raises(ValueError, match="MoveNet"):
        decode(np.zeros((2, 1, 17, 3)))


def test_quantized_uint8_output():
    k = _kps()
    scale, zp = 1 / 255, 0
    q = np.round(k / scale).astype(np.uint8)
    pose = decode(dequantize(q, scale, zp))
    assert pose.keypoints[5].x == pytest.approx(k[0, 0, 5, 1], abs=1 / 255)


@pytest.mark.shared
def test_real_movenet_matches_reference(shared):
    cv2 = pytest.importorskip("cv2")
    interpreter_mod = pytest.importorskip("ai_edge_litert.interpreter")
    model = shared("models", "movenet_single_pose_lightning_ptq.tflite")
    with open(shared("models", "movenet_single_pose_lightning_ptq_reference.csv")) as f:
        ref = np.array(
            [[float(r["keypoint_x"]), float(r["keypoint_y"])] for r in csv.DictReader(f)]
        )
    image = cv2.cvtColor(cv2.imread(str(shared("images", "squat.bmp"))), cv2.COLOR_BGR2RGB)
    it = interpreter_mod.Interpreter(model_path=str(model))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], cv2.resize(image, (192, 192))[None])
    it.invoke()
    d = it.get_output_details()[0]
    pose = decode(dequantize(it.get_tensor(d["index"]), *d["quantization"]))
    got = np.array([[k.x, k.y] for k in pose.keypoints])
    # The reference was made with another resize implementation: positions agree within 4%.
    np.testing.assert_allclose(got, ref, atol=0.04)
    assert pose.score > 0.3 and pose.box is not None
