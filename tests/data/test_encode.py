"""Target encoders: SSD encode -> runtime decode_raw round trip, YOLO assignment, pose heatmaps."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.core.anchors import ssd_anchors
from edgekit.core.boxes import iou
from edgekit.data.encode import pose_encode, ssd_encode, yolo_encode, yolo_levels
from edgekit.runtime.decoders.ssd import decode_boxes, decode_raw
from edgekit.zoo.ssd import ssd_anchor_kwargs


@pytest.fixture(scope="module")
def anchors() -> np.ndarray:
    return ssd_anchors(**ssd_anchor_kwargs(128))


def test_ssd_encode_decode_round_trip(anchors):
    boxes = np.array(
        [[0.1, 0.2, 0.45, 0.6], [0.5, 0.5, 0.95, 0.9], [0.0, 0.0, 0.0, 0.0]], np.float32
    )
    ids = np.array([2, 0, -1])
    box_t, cls_t = ssd_encode(boxes, ids, anchors)
    pos = box_t[:, 4] == 1
    assert pos.sum() >= 2 and set(np.unique(cls_t[pos])) == {1, 3}  # class c -> column c + 1
    # Decoding the encodings of positive anchors gives back their box exactly.
    decoded = decode_boxes(box_t[:, :4], anchors)[pos]
    best = iou(decoded, boxes[:2]).max(axis=1)
    np.testing.assert_allclose(best, 1.0, atol=1e-5)
    # Through the full runtime decoder: perfect logits give exactly the two boxes and classes.
    logits = np.full((len(anchors), 4), -12.0, np.float32)
    logits[np.arange(len(anchors)), np.maximum(cls_t, 0)] = 12.0
    dets = decode_raw(box_t[:, :4], logits, anchors, scores_are_logits=True, score_threshold=0.5)
    assert len(dets) == 2
    dets = sorted(dets, key=lambda d: d.class_id)
    assert [d.class_id for d in dets] == [0, 2]
    np.testing.assert_allclose([d.box for d in dets], boxes[[1, 0]], atol=1e-5)


def test_ssd_encode_ignore_and_background(anchors):
    gt = np.array([[0.3, 0.3, 0.7, 0.7]])
    box_t, cls_t = ssd_encode(gt, np.array([0]), anchors, pos_iou=0.5, neg_iou=0.3)
    a = anchors
    overlap = iou(
        np.stack(
            [
                a[:, 1] - a[:, 3] / 2,
                a[:, 0] - a[:, 2] / 2,
                a[:, 1] + a[:, 3] / 2,
                a[:, 0] + a[:, 2] / 2,
            ],
            1,
        ),
        gt,
    )[:, 0]
    best = overlap.argmax()
    expect = np.where(overlap >= 0.5, 1, np.where(overlap >= 0.3, -1, 0))
    expect[best] = 1  # forced match
    np.testing.assert_array_equal(cls_t, expect)
    assert (cls_t == -1).any()
    assert np.all(box_t[cls_t <= 0, 4] == 0)
    empty_b, empty_c = ssd_encode(np.zeros((3, 4)), -np.ones(3), anchors)
    assert not empty_b.any() and not empty_c.any()


def test_yolo_assignment_positives_where_expected():
    size = (64, 64)
    points, strides = yolo_levels(size)
    assert len(points) == 64 + 16 + 4
    # A 20x20 px box centred at (20, 36) px: stride 8, the cells whose centre lies inside it.
    box = np.array([[10 / 64, 26 / 64, 30 / 64, 46 / 64]])
    box_t, cls_t = yolo_encode(box, np.array([1]), size, 3)
    pos = np.nonzero(box_t[:, 4])[0]
    assert set(strides[pos]) == {8.0}
    centres = points[pos]
    assert sorted(map(tuple, centres)) == [
        (x, y) for x in (12.0, 20.0, 28.0) for y in (28.0, 36.0, 44.0)
    ]
    assert np.all(cls_t[pos] == [0, 1, 0]) and cls_t.sum() == len(pos)
    # (l, t, r, b) rebuild the box from each cell centre.
    ltrb = box_t[pos, :4] * 8
    rebuilt = np.stack(
        [
            centres[:, 0] - ltrb[:, 0],
            centres[:, 1] - ltrb[:, 1],
            centres[:, 0] + ltrb[:, 2],
            centres[:, 1] + ltrb[:, 3],
        ],
        1,
    )
    np.testing.assert_allclose(rebuilt, np.repeat(box * 64, len(pos), 0), atol=1e-4)
    # A large box goes to stride 32; a tiny one gets the cell holding its centre.
    big_t, _ = yolo_encode(np.array([[0.0, 0.0, 1.0, 1.0]]), np.array([0]), (256, 256), 1)
    _, big_strides = yolo_levels((256, 256))
    assert set(big_strides[big_t[:, 4] == 1]) == {32.0}
    tiny_t, _ = yolo_encode(np.array([[0.51, 0.51, 0.53, 0.53]]), np.array([0]), size, 1)
    (cell,) = np.nonzero(tiny_t[:, 4])[0]
    assert strides[cell] == 8 and tuple(points[cell]) == (36.0, 36.0)


def test_yolo_overlap_goes_to_smaller_box():
    size = (64, 64)
    boxes = np.array([[0.0, 0.0, 0.9, 0.9], [0.3, 0.3, 0.6, 0.6]])
    _, cls_t = yolo_encode(boxes, np.array([0, 1]), size, 2)
    _, strides = yolo_levels(size)
    small = (strides == 8) & (cls_t[:, 1] == 1)
    assert small.any() and not (cls_t.sum(axis=1) > 1).any()


def test_pose_heatmap_peak_and_subpixel_offsets_decode():
    keras = pytest.importorskip("keras")
    from edgekit.zoo.pose import MoveNetDecode

    grid = (16, 16)
    k = 17
    rng = np.random.default_rng(0)
    kps = np.zeros((1, k, 3), np.float32)
    kps[0, :, 0] = rng.uniform(0.3, 0.7, k)
    kps[0, :, 1] = rng.uniform(0.25, 0.75, k)
    kps[0, :, 2] = 2
    kps[0, 3, 2] = 0  # unlabelled
    box = np.array([[0.25, 0.2, 0.75, 0.8]], np.float32)
    center, reg, heat, off = pose_encode(box, np.array([0]), kps, grid)
    # Centre peak at the box centre's cell; keypoint peaks at floor(pos * grid).
    assert np.unravel_index(center[..., 0].argmax(), grid) == (8, 8)
    for j in range(k):
        if j == 3:
            assert heat[..., j].max() == 0 and off[..., 2 * k + j].sum() == 0
            continue
        iy, ix = int(kps[0, j, 1] * 16), int(kps[0, j, 0] * 16)
        assert np.unravel_index(heat[..., j].argmax(), grid) == (iy, ix)
        assert heat[iy, ix, j] == pytest.approx(1.0)
    # Feeding the targets as perfect predictions to the zoo's decode recovers the keypoints.
    out = MoveNetDecode(k)(
        center[None], reg[None, ..., : 2 * k], heat[None], off[None, ..., : 2 * k]
    )
    out = keras.ops.convert_to_numpy(out)[0, 0]
    lab = kps[0, :, 2] > 0
    np.testing.assert_allclose(out[lab, 0], kps[0, lab, 1], atol=1e-5)
    np.testing.assert_allclose(out[lab, 1], kps[0, lab, 0], atol=1e-5)
