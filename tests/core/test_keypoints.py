"""COCO keypoint conventions, OKS and PCK."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgekit.core.keypoints import (
    COCO_FLIP_INDEX,
    COCO_FLIP_PAIRS,
    COCO_SIGMAS,
    COCO_SKELETON,
    flip_keypoints,
    keypoints_box,
    oks,
    oks_matrix,
    pck,
)
from edgekit.core.types import COCO_KEYPOINT_NAMES


def test_flip_pairs_are_left_right_mirrors():
    assert len(COCO_FLIP_PAIRS) == 8
    for left, right in COCO_FLIP_PAIRS:
        assert COCO_KEYPOINT_NAMES[left].replace("left_", "right_") == COCO_KEYPOINT_NAMES[right]
    assert COCO_FLIP_INDEX[0] == 0  # the nose stays
    assert sorted(COCO_FLIP_INDEX) == list(range(17))
    assert all(COCO_FLIP_INDEX[COCO_FLIP_INDEX[i]] == i for i in range(17))


def test_skeleton_edges_are_valid_and_connected():
    assert len(COCO_SKELETON) == 19
    assert len(set(COCO_SKELETON)) == 19
    seen = {0}
    changed = True
    while changed:
        changed = False
        for a, b in COCO_SKELETON:
            if (a in seen) != (b in seen):
                seen |= {a, b}
                changed = True
    assert seen == set(range(17))
    mirrored = {tuple(sorted((COCO_FLIP_INDEX[a], COCO_FLIP_INDEX[b]))) for a, b in COCO_SKELETON}
    assert mirrored == {tuple(sorted(e)) for e in COCO_SKELETON}


def test_flip_keypoints_mirrors_and_swaps():
    kps = np.zeros((17, 3))
    kps[:, 0] = np.linspace(0.1, 0.9, 17)
    kps[:, 1] = np.arange(17) / 20
    kps[:, 2] = np.arange(17)
    out = flip_keypoints(kps)
    left_eye, right_eye = (
        COCO_KEYPOINT_NAMES.index("left_eye"),
        COCO_KEYPOINT_NAMES.index("right_eye"),
    )
    assert out[left_eye, 0] == pytest.approx(1 - kps[right_eye, 0])
    assert out[left_eye, 2] == right_eye  # the other columns follow the swap
    np.testing.assert_allclose(flip_keypoints(out), kps)  # flipping twice is the identity
    np.testing.assert_allclose(flip_keypoints(kps[None], width=640.0)[0, 0, 0], 640 - kps[0, 0])
    with pytest.raises(ValueError, match="17"):
        flip_keypoints(np.zeros((16, 2)))


def test_sigmas_are_coco():
    assert COCO_SIGMAS.shape == (17,)
    assert COCO_SIGMAS[0] == pytest.approx(0.026)
    assert COCO_SIGMAS[11] == pytest.approx(0.107)
    with pytest.raises(ValueError):
        COCO_SIGMAS[0] = 1.0


def test_oks_perfect_and_known_falloff():
    gt = np.random.default_rng(0).uniform(0, 100, (17, 2))
    vis = np.full(17, 2)
    assert oks(gt, gt, vis, area=1000.0) == pytest.approx(1.0)
    # Move only the nose by d with e = d^2 / (2 * area * (2 sigma)^2) = 1 -> exp(-1) for it.
    area = 500.0
    d = math.sqrt(2 * area * (2 * COCO_SIGMAS[0]) ** 2)
    pred = gt.copy()
    pred[0, 0] += d
    assert oks(pred, gt, vis, area) == pytest.approx((16 + math.exp(-1)) / 17)
    # Unlabelled keypoints do not count.
    vis0 = vis.copy()
    vis0[0] = 0
    assert oks(pred, gt, vis0, area) == pytest.approx(1.0)
    assert oks(pred, gt, np.zeros(17), area) == 0.0


def test_oks_matrix_shapes_and_errors():
    rng = np.random.default_rng(1)
    preds = rng.uniform(0, 100, (3, 17, 2))
    gts = rng.uniform(0, 100, (2, 17, 2))
    m = oks_matrix(preds, gts, np.ones((2, 17)), np.array([900.0, 400.0]))
    assert m.shape == (3, 2)
    assert np.all((m >= 0) & (m <= 1))
    np.testing.assert_allclose(m[1, 0], oks(preds[1], gts[0], np.ones(17), 900.0))
    with pytest.raises(ValueError, match="inconsistent"):
        oks_matrix(preds, gts, np.ones((2, 16)), np.array([1.0, 1.0]))


def test_pck():
    gt = np.zeros((4, 2))
    pred = np.array([[1.0, 0.0], [3.0, 4.0], [0.0, 10.0], [0.0, 0.0]])
    assert pck(pred, gt, 5.0) == pytest.approx(0.75)
    assert pck(pred, gt, 4.9) == pytest.approx(0.5)
    assert pck(pred, gt, 5.0, visibility=[1, 1, 0, 0]) == pytest.approx(1.0)
    assert math.isnan(pck(pred, gt, 5.0, visibility=[0, 0, 0, 0]))
    with pytest.raises(ValueError):
        pck(pred, gt[:3], 5.0)


def test_keypoints_box():
    xy = np.array([[0.1, 0.2], [0.5, 0.9], [0.3, 0.05]])
    assert keypoints_box(xy, [0.9, 0.9, 0.1], 0.5) == pytest.approx((0.1, 0.2, 0.5, 0.9))
    assert keypoints_box(xy, [0.9, 0.9, 0.9]) == pytest.approx((0.1, 0.05, 0.5, 0.9))
    assert keypoints_box(xy, [0.1, 0.1, 0.1], 0.5) is None
