"""PoseNet multi-person decoder: synthetic fields with known answers, and the real model."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from edgekit.core.types import COCO_KEYPOINT_NAMES
from edgekit.runtime.decoders.posenet import POSE_CHAIN, decode, part_candidates
from edgekit.runtime.preprocess import dequantize

STRIDE = 16
H, W, K, E = 31, 41, 17, 16
IN_H, IN_W = (H - 1) * STRIDE + 1, (W - 1) * STRIDE + 1


def person(cx, cy, scale=1.0):
    """17 keypoints (y, x) in input pixels around (cx, cy): a rough standing figure."""
    rel = {
        "nose": (-100, 0), "left_eye": (-110, 10), "right_eye": (-110, -10), "left_ear": (-105, 22),
        "right_ear": (-105, -22), "left_shoulder": (-60, 40), "right_shoulder": (-60, -40),
        "left_elbow": (-10, 55), "right_elbow": (-10, -55), "left_wrist": (30, 60),
        "right_wrist": (30, -60), "left_hip": (30, 25), "right_hip": (30, -25),
        "left_knee": (100, 28), "right_knee": (100, -28), "left_ankle": (170, 30), "right_ankle": (170, -30),
    }  # fmt: skip
    return np.array([[cy + scale * rel[n][0], cx + scale * rel[n][1]] for n in COCO_KEYPOINT_NAMES])


def render(people, *, root=None, peak_logit=5.0):
    """Heatmap logits with a peak per keypoint, short offsets pointing exactly at each keypoint
    from its neighbouring cells, and mid offsets pointing exactly at each person's keypoints from
    every cell of that person's column band (persons are side by side)."""
    hm = np.full((H, W, K), -8.0)
    so = np.zeros((H, W, 2 * K))
    mo = np.zeros((H, W, 4 * E))
    gy, gx = np.meshgrid(np.arange(H) * STRIDE, np.arange(W) * STRIDE, indexing="ij")
    bounds = np.linspace(0, W, len(people) + 1).round().astype(int)
    for p, kps in enumerate(people):
        band = (slice(None), slice(bounds[p], bounds[p + 1]))
        for k, (y, x) in enumerate(kps):
            iy, ix = (
                int(np.clip(np.floor(v / STRIDE + 0.5), 0, n - 1)) for v, n in ((y, H), (x, W))
            )
            hm[iy, ix, k] = peak_logit + (1.0 if k == root else 0.0) - 0.1 * p
            # Short offsets are only trained near the keypoint: within one cell of it.
            near = np.zeros((H, W), bool)
            near[max(iy - 1, 0) : iy + 2, max(ix - 1, 0) : ix + 2] = True
            so[..., k] = np.where(near, y - gy, so[..., k])
            so[..., K + k] = np.where(near, x - gx, so[..., K + k])
        for e, (parent, child) in enumerate(POSE_CHAIN):
            mo[(*band, e)] = (kps[child, 0] - gy)[band]  # forward y
            mo[(*band, E + e)] = (kps[child, 1] - gx)[band]  # forward x
            mo[(*band, 2 * E + e)] = (kps[parent, 0] - gy)[band]  # backward y
            mo[(*band, 3 * E + e)] = (kps[parent, 1] - gx)[band]  # backward x
    return hm, so, mo


def as_pixels(pose):
    return np.array([[kp.y * IN_H - 0.5, kp.x * IN_W - 0.5] for kp in pose.keypoints])


@pytest.mark.parametrize(
    "root",
    [None, COCO_KEYPOINT_NAMES.index("left_ankle"), COCO_KEYPOINT_NAMES.index("right_wrist")],
)
def test_single_person_decoded_exactly_from_any_root(root):
    truth = person(320, 220)
    poses = decode(*render([truth], root=root), output_stride=STRIDE)
    assert len(poses) == 1  # other local maxima of the same person are suppressed
    np.testing.assert_allclose(as_pixels(poses[0]), truth, atol=1e-6)
    assert poses[0].score == pytest.approx(
        np.mean([1 / (1 + np.exp(-5.0))] * 16 + [1 / (1 + np.exp(-(5.0 + (root is not None))))])
    )
    assert poses[0].box is not None


def test_two_people_sorted_by_score_and_max_poses():
    a, b = person(160, 220), person(480, 230, scale=0.9)
    poses = decode(*render([a, b]), output_stride=STRIDE, nms_radius=20)
    assert len(poses) == 2
    assert poses[0].score >= poses[1].score
    np.testing.assert_allclose(as_pixels(poses[0]), a, atol=1e-6)
    np.testing.assert_allclose(as_pixels(poses[1]), b, atol=1e-6)
    assert len(decode(*render([a, b]), max_poses=1)) == 1
    assert decode(*render([a, b]), max_poses=0) == []


def test_wrong_mid_offset_layout_would_not_decode():
    """Guards the [fwd y, fwd x, bwd y, bwd x] layout: swapping blocks breaks the exact answer."""
    truth = person(320, 220)
    hm, so, mo = render([truth], root=COCO_KEYPOINT_NAMES.index("left_ankle"))
    swapped = np.concatenate([mo[..., 2 * E :], mo[..., : 2 * E]], axis=-1)
    pose = decode(hm, so, swapped)[0]
    assert np.abs(as_pixels(pose) - truth).max() > 20


def test_explicit_input_size_scales_keypoints():
    truth = person(320, 220)
    (pose,) = decode(*render([truth]), input_size=(2 * IN_H, 2 * IN_W))
    got = np.array([[kp.y, kp.x] for kp in pose.keypoints])
    np.testing.assert_allclose(got, (truth + 0.5) / [2 * IN_H, 2 * IN_W], atol=1e-9)


def test_thresholds():
    hm, so, mo = render([person(320, 220)])
    assert decode(hm, so, mo, score_threshold=0.999) == []
    assert decode(hm, so, mo, min_pose_score=0.999) == []
    assert decode(hm, so, mo, box_score_threshold=None)[0].box is None


def test_part_candidates_local_maxima():
    s = np.zeros((5, 5, 1))
    s[1, 1, 0] = 0.9
    s[1, 2, 0] = 0.8  # next to a higher one: not a maximum
    s[3, 3, 0] = 0.7
    s[4, 4, 0] = 0.7
    ys, xs, _ks, vals = part_candidates(s, 0.5, 1)
    assert list(zip(ys.tolist(), xs.tolist(), strict=True)) == [
        (1, 1),
        (3, 3),
        (4, 4),
    ]  # equal neighbours both count
    assert vals.tolist() == pytest.approx([0.9, 0.7, 0.7])


def test_quantized_outputs_and_non_finite_values():
    hm, so, mo = render([person(320, 220)])
    q_hm = np.clip(np.round(hm / 0.0784) + 128, 0, 255).astype(np.uint8)
    q_so = np.clip(np.round(so / 0.0784) + 128, 0, 255).astype(np.uint8)
    q_mo = np.clip(np.round(mo / 1.3876) + 117, 0, 255).astype(np.uint8)
    poses = decode(
        dequantize(q_hm, 0.0784, 128)[None],
        dequantize(q_so, 0.0784, 128)[None],
        dequantize(q_mo, 1.3876, 117)[None],
    )
    assert len(poses) >= 1
    for kp in poses[0].keypoints:
        assert 0.0 <= kp.x <= 1.0 and 0.0 <= kp.y <= 1.0
    hm[0, 0, 0], so[1, 1, 3], mo[2, 2, 5] = np.nan, np.inf, -np.inf
    hm[5, 5, 2] = np.inf
    for pose in decode(hm, so, mo):
        assert all(np.isfinite([kp.x, kp.y, kp.score]).all() for kp in pose.keypoints)


def test_shape_errors():
    hm, so, mo = render([person(320, 220)])
    with pytest.raises(ValueError, match="short_offsets"):
        decode(hm, so[..., :-1], mo)
    with pytest.raises(ValueError, match="mid_offsets"):
        decode(hm, so, mo[..., :32])
    with pytest.raises(ValueError, match="17 parts"):
        decode(hm[..., :16], so, mo)
    with pytest.raises(ValueError, match="heatmaps"):
        decode(hm[0], so, mo)
    with pytest.raises(ValueError, match="input_size"):
        decode(hm, so, mo, input_size=(0, 641))
    with pytest.raises(ValueError, match="output_stride"):
        decode(hm, so, mo, output_stride=0)


@pytest.mark.shared
def test_real_posenet_finds_the_squatting_person(shared):
    cv2 = pytest.importorskip("cv2")
    interpreter_mod = pytest.importorskip("ai_edge_litert.interpreter")
    it = interpreter_mod.Interpreter(
        model_path=str(shared("models", "posenet_mobilenet_v1_075_481_641_quant.tflite"))
    )
    with open(shared("models", "movenet_single_pose_lightning_ptq_reference.csv")) as f:
        movenet_ref = np.array(
            [[float(r["keypoint_x"]), float(r["keypoint_y"])] for r in csv.DictReader(f)]
        )
    image = cv2.cvtColor(cv2.imread(str(shared("images", "squat.bmp"))), cv2.COLOR_BGR2RGB)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], cv2.resize(image, (641, 481))[None])
    it.invoke()
    heatmaps, short, mid = (
        dequantize(it.get_tensor(d["index"]), *d["quantization"]) for d in it.get_output_details()
    )
    poses = decode(heatmaps, short, mid, output_stride=16, score_threshold=0.5, nms_radius=20)
    confident = [p for p in poses if p.score > 0.3]
    assert len(confident) == 1  # one person in the picture
    pose = confident[0]
    got = np.array([[kp.x, kp.y] for kp in pose.keypoints])
    # PoseNet and MoveNet agree on where the person's joints are (normalized input coordinates).
    err = np.linalg.norm(got - movenet_ref, axis=1)
    assert np.median(err) < 0.05
    nose, left_ankle = got[0], got[COCO_KEYPOINT_NAMES.index("left_ankle")]
    assert nose[1] < left_ankle[1]  # head above feet
