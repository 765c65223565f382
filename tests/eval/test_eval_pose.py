"""Pose metrics: PCK on hand-made arrays, OKS AP and PCK on made-up poses, MoveNet on real truth."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from edgekit.core.types import COCO_KEYPOINT_NAMES, Keypoint, Pose
from edgekit.data import Dataset, ImageRecord
from edgekit.data.images import read_image_size
from edgekit.errors import DatasetError
from edgekit.eval.pose import evaluate_poses, pck_per_instance


def test_pck_per_instance_known_answer():
    gt = np.zeros((2, 3, 2))
    pred = np.array([[[0, 0], [3, 4], [0, 11]], [[0, 0], [0, 0], [100, 0]]], dtype=float)
    vis = np.array([[2, 2, 2], [2, 0, 1]])
    size = np.array([100.0, 50.0])  # thresholds 10 and 5 px at alpha 0.1
    correct, labelled = pck_per_instance(pred, gt, vis, size, alpha=0.1)
    assert labelled.tolist() == [[True, True, True], [True, False, True]]
    assert correct.tolist() == [[True, True, False], [True, False, False]]
    assert correct.sum() / labelled.sum() == pytest.approx(3 / 5)
    with pytest.raises(ValueError):
        pck_per_instance(pred[:, :2], gt, vis, size)


def _kp_dataset(kps_px: np.ndarray, w: int = 200, h: int = 300) -> Dataset:
    xy = kps_px / np.array([w, h])
    kps = np.concatenate([xy, np.full((len(xy), 1), 2.0)], axis=1)[None]
    x0, y0 = xy.min(0)
    x1, y1 = xy.max(0)
    rec = ImageRecord("p.jpg", w, h, np.array([[x0, y0, x1, y1]]), np.array([0]), kps, image_id=1)
    return Dataset((rec,), ("person",), COCO_KEYPOINT_NAMES)


def _pose(kps_px: np.ndarray, w: int = 200, h: int = 300, score: float = 0.9) -> Pose:
    return Pose(tuple(Keypoint(float(x) / w, float(y) / h, 0.9) for x, y in kps_px), score)


def _truth_points() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.column_stack([rng.uniform(40, 160, 17), rng.uniform(30, 270, 17)])


def test_perfect_poses_give_ap_and_pck_one():
    pts = _truth_points()
    m = evaluate_poses(_kp_dataset(pts), [[_pose(pts)]])
    assert m.metrics["AP"] == pytest.approx(1.0)
    assert m.metrics["PCK@0.1"] == pytest.approx(1.0)
    assert all(v["PCK"] == 1.0 and v["labelled"] == 1 for v in m.per_keypoint.values())


def test_half_the_keypoints_far_off():
    pts = _truth_points()
    moved = pts.copy()
    moved[::2] += 100.0  # 9 of 17 keypoints far beyond 0.1 * box size
    m = evaluate_poses(_kp_dataset(pts), [[_pose(moved)]], alpha=0.1)
    assert m.metrics["PCK@0.1"] == pytest.approx(8 / 17)
    assert m.per_keypoint["nose"]["PCK"] == 0.0 and m.per_keypoint["left_eye"]["PCK"] == 1.0
    assert m.metrics["AP"] < 0.5


def test_missed_person_counts_as_wrong():
    pts = _truth_points()
    m = evaluate_poses(_kp_dataset(pts), [[]])
    assert m.metrics["PCK@0.1"] == 0.0 and m.metrics["AP"] == 0.0


def test_dataset_without_keypoints_is_refused():
    rec = ImageRecord("p.jpg", 10, 10, np.array([[0, 0, 1, 1]]), np.array([0]), image_id=1)
    with pytest.raises(DatasetError):
        evaluate_poses(Dataset((rec,), ("person",)), [[]])


def tfex_pose_dataset(folder) -> Dataset:
    """image1.png and image2.jpeg with the 17 keypoints of pose_landmark_truth.csv."""
    with open(folder / "pose_landmark_truth.csv", newline="") as f:
        rows = [[float(v) for v in row] for row in list(csv.reader(f))[1:] if row]
    recs = []
    for i, (name, row) in enumerate(zip(("image1.png", "image2.jpeg"), rows, strict=False)):
        w, h = read_image_size(folder / name)
        xy = np.array(row, dtype=float).reshape(17, 2) / np.array([w, h])
        kps = np.concatenate([xy, np.full((17, 1), 2.0)], axis=1)[None]
        box = np.array([[*xy.min(0), *xy.max(0)]])
        recs.append(ImageRecord(folder / name, w, h, box, np.array([0]), kps, image_id=i + 1))
    return Dataset(tuple(recs), ("person",), COCO_KEYPOINT_NAMES, root=folder)


def test_movenet_on_tfex_pose_truth(shared):
    from edgekit.eval.run import load_model, predict_dataset

    ds = tfex_pose_dataset(shared("images", "tfex_pose"))
    model = load_model(shared("models", "movenet_single_pose_lightning_ptq.tflite"))
    preds = predict_dataset(model, ds, score_threshold=0.001)
    m = evaluate_poses(ds, preds, alpha=0.1)
    assert m.metrics["PCK@0.1"] >= 0.9
    assert m.metrics["AP"] >= 0.7
