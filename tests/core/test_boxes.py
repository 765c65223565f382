"""Box formats, IoU and NMS."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgekit.core.boxes import (
    area,
    batched_nms,
    clip01,
    cxcywh_to_xyxy,
    iou,
    nms,
    xyxy_to_cxcywh,
    xyxy_to_yxyx,
    yxyx_to_xyxy,
)


def reference_nms(boxes, scores, thr, max_output=None):
    """Plain-Python greedy NMS used as the oracle."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep = []
    for i in order:
        if all(iou(boxes[i : i + 1], boxes[j : j + 1])[0, 0] <= thr for j in keep):
            keep.append(i)
        if max_output is not None and len(keep) >= max_output:
            break
    return keep


def test_conversions_round_trip():
    xyxy = np.array([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]])
    cxcywh = xyxy_to_cxcywh(xyxy)
    np.testing.assert_allclose(cxcywh, [[0.3, 0.4, 0.4, 0.4], [0.5, 0.5, 1.0, 1.0]])
    np.testing.assert_allclose(cxcywh_to_xyxy(cxcywh), xyxy)
    yxyx = xyxy_to_yxyx(xyxy)
    np.testing.assert_allclose(yxyx, [[0.2, 0.1, 0.6, 0.5], [0.0, 0.0, 1.0, 1.0]])
    np.testing.assert_allclose(yxyx_to_xyxy(yxyx), xyxy)


def test_conversions_empty_and_bad_shape():
    assert cxcywh_to_xyxy(np.zeros((0, 4))).shape == (0, 4)
    assert yxyx_to_xyxy([]).shape == (0, 4)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        cxcywh_to_xyxy(np.zeros((3, 5)))


def test_clip01_handles_nan_and_inf():
    out = clip01(np.array([[-0.5, np.nan, 1.5, np.inf], [0.2, 0.3, -np.inf, 0.9]]))
    np.testing.assert_array_equal(out, [[0.0, 0.0, 1.0, 1.0], [0.2, 0.3, 0.0, 0.9]])


def test_area_inverted_is_zero():
    np.testing.assert_allclose(area([[0, 0, 2, 3], [1, 1, 0, 0], [0, 0, 0, 5]]), [6, 0, 0])


def test_iou_known_values():
    a = np.array([[0, 0, 2, 2]], float)
    b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [2, 2, 3, 3], [0, 0, 1, 2]], float)
    np.testing.assert_allclose(iou(a, b), [[1 / 7, 1.0, 0.0, 0.5]])
    assert iou(b, a).shape == (4, 1)


def test_iou_degenerate_and_empty():
    z = np.array([[0.5, 0.5, 0.5, 0.5]])
    assert iou(z, z)[0, 0] == 0.0
    assert not np.isnan(iou(z, z)).any()
    assert iou(np.zeros((0, 4)), z).shape == (0, 1)
    assert iou(z, np.zeros((0, 4))).shape == (1, 0)


def test_nms_known_overlaps():
    boxes = np.array(
        [
            [0, 0, 10, 10],  # 0: kept (best)
            [1, 1, 11, 11],  # 1: IoU 0.68 with 0 -> dropped
            [20, 20, 30, 30],  # 2: separate -> kept
            [0, 0, 10, 5],  # 3: IoU 0.5 with 0 -> kept at thr 0.5 (not > thr)
        ],
        float,
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [0, 2, 3])
    np.testing.assert_array_equal(nms(boxes, scores, 0.4), [0, 2])
    np.testing.assert_array_equal(nms(boxes, scores, 0.5, max_output=2), [0, 2])
    assert nms(boxes, scores, 0.5, max_output=0).size == 0


def test_nms_is_score_sorted_not_index_sorted():
    boxes = np.array([[0, 0, 1, 1], [5, 5, 6, 6], [10, 10, 11, 11]], float)
    np.testing.assert_array_equal(nms(boxes, [0.1, 0.9, 0.5], 0.5), [1, 2, 0])


def test_nms_empty_and_mismatch():
    out = nms(np.zeros((0, 4)), np.zeros(0), 0.5)
    assert out.dtype == np.int64 and out.size == 0
    with pytest.raises(ValueError, match="scores"):
        nms(np.zeros((2, 4)), np.zeros(3), 0.5)


def test_nms_nan_score_goes_last_and_degenerate_boxes_survive():
    boxes = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1]], float)
    keep = nms(boxes, [np.nan, 0.5, 0.4], 0.5)
    np.testing.assert_array_equal(keep, [1, 2, 0])


def test_batched_nms_class_aware_vs_agnostic():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10]], float)
    scores = np.array([0.9, 0.8, 0.7])
    classes = np.array([0, 1, 0])
    np.testing.assert_array_equal(batched_nms(boxes, scores, classes, 0.5), [0, 1])
    np.testing.assert_array_equal(batched_nms(boxes, scores, np.zeros(3), 0.5), [0])
    np.testing.assert_array_equal(batched_nms(boxes, scores, classes, 0.5, max_output=1), [0])
    assert batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0), 0.5).size == 0


def test_batched_nms_huge_coordinates_falls_back_per_class():
    boxes = np.array([[0, 0, 1e150, 1e150], [0, 0, 1e150, 1e150], [0, 0, 1e150, 1e150]])
    keep = batched_nms(boxes, [0.5, 0.9, 0.7], [3, 7, 3], 0.5)
    np.testing.assert_array_equal(keep, [1, 2])


def _random_boxes(rng, n, scale=1.0):
    xy = rng.uniform(0, scale, (n, 2))
    wh = rng.uniform(0, scale * 0.3, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


def test_nms_matches_reference_on_random_boxes():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(0, 40))
        boxes = _random_boxes(rng, n)
        scores = rng.uniform(size=n)
        thr = float(rng.uniform(0.1, 0.9))
        assert nms(boxes, scores, thr).tolist() == reference_nms(boxes, scores, thr)


def test_batched_nms_matches_per_class_reference():
    rng = np.random.default_rng(1)
    boxes = _random_boxes(rng, 200, scale=100.0)
    scores = rng.uniform(size=200)
    classes = rng.integers(0, 5, 200)
    expected = []
    for c in range(5):
        idx = np.flatnonzero(classes == c)
        expected += [int(idx[i]) for i in reference_nms(boxes[idx], scores[idx], 0.3)]
    expected.sort(key=lambda i: -scores[i])
    assert batched_nms(boxes, scores, classes, 0.3).tolist() == expected


def test_nms_10k_boxes_is_fast():
    rng = np.random.default_rng(2)
    boxes = _random_boxes(rng, 10_000, scale=640.0)
    scores = rng.uniform(size=10_000)
    t0 = time.perf_counter()
    keep = batched_nms(boxes, scores, rng.integers(0, 80, 10_000), 0.45, max_output=300)
    elapsed = time.perf_counter() - t0
    assert 0 < len(keep) <= 300
    assert elapsed < 2.0, f"batched_nms on 10k boxes took {elapsed:.2f}s"


finite_boxes = hnp.arrays(
    np.float64, st.tuples(st.integers(0, 30), st.just(4)), elements=st.floats(-10, 10)
)


@settings(max_examples=60, deadline=None)
@given(finite_boxes, st.floats(0.0, 1.0))
def test_nms_properties(boxes, thr):
    n = boxes.shape[0]
    scores = np.linspace(1.0, 0.0, n) if n else np.zeros(0)
    keep = nms(boxes, scores, thr)
    assert len(set(keep.tolist())) == len(keep)
    assert np.all(np.diff(scores[keep]) <= 0)
    kept = boxes[keep]
    m = iou(kept, kept)
    np.fill_diagonal(m, 0.0)
    assert not np.isnan(m).any()
    assert np.all(m <= thr + 1e-12)
