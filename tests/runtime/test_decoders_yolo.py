"""YOLO decoders: [4+C, N] heads in any orientation, and in-model NMS outputs."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edgekit.runtime.decoders.yolo import decode, decode_nms, to_channels_first
from edgekit.runtime.preprocess import dequantize

LABELS = ("person", "bicycle", "car")


def head(rows, n=20, num_classes=3):
    """(4+C, N) head; each row = (cx, cy, w, h, class, score) in 320x320 input pixels."""
    p = np.zeros((4 + num_classes, n))
    for i, (cx, cy, w, h, c, s) in enumerate(rows):
        p[:4, i] = (cx, cy, w, h)
        p[4 + c, i] = s
    return p


ROWS = [
    (80, 80, 64, 64, 0, 0.9),
    (82, 81, 64, 64, 0, 0.8),  # duplicate of the first
    (82, 81, 64, 64, 2, 0.6),  # same place, other class
    (240, 160, 32, 96, 1, 0.7),
    (10, 10, 4, 4, 1, 0.1),  # under the threshold
]


def test_decode_pixels_class_aware():
    dets = decode(head(ROWS), input_size=(320, 320), score_threshold=0.25, labels=LABELS)
    assert [(d.label, round(d.score, 2)) for d in dets] == [
        ("person", 0.9),
        ("bicycle", 0.7),
        ("car", 0.6),
    ]
    assert dets[0].box == pytest.approx((48 / 320, 48 / 320, 112 / 320, 112 / 320))
    agnostic = decode(head(ROWS), input_size=(320, 320), score_threshold=0.25, class_agnostic=True)
    assert [d.class_id for d in agnostic] == [0, 1]
    assert len(decode(head(ROWS), input_size=320, max_detections=2)) == 2


def test_decode_orientations_and_batch():
    p = head(ROWS)
    ref = decode(p, input_size=(320, 320), labels=LABELS)
    for variant in (p[None], p.T, p.T[None]):
        assert decode(variant, input_size=(320, 320), labels=LABELS) == ref


def test_orientation_uses_label_count_when_ambiguous():
    # 7 channels x 5 candidates: the smaller axis would be wrong if we had 1 class and 7 candidates.
    p = np.zeros((5, 7))
    assert to_channels_first(p).shape == (5, 7)
    assert to_channels_first(p, num_classes=3).shape == (7, 5)
    assert to_channels_first(p.T, num_classes=3).shape == (7, 5)
    with pytest.raises(ValueError, match="4\\+C"):
        to_channels_first(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="channels"):
        to_channels_first(np.zeros((3, 4)))


def test_non_square_input_size_is_height_width():
    p = head([(320, 120, 64, 48, 0, 0.9)])
    (det,) = decode(p, input_size=(240, 640))
    assert det.box == pytest.approx((288 / 640, 96 / 240, 352 / 640, 144 / 240))


def test_normalized_boxes_detected_or_forced():
    p = head([(0.25, 0.25, 0.2, 0.2, 0, 0.9)])
    (det,) = decode(p)  # no input size needed: values are <= 1.5
    assert det.box == pytest.approx((0.15, 0.15, 0.35, 0.35))
    (det,) = decode(p, normalized=False, input_size=(2, 2))
    assert det.box == pytest.approx((0.075, 0.075, 0.175, 0.175))
    with pytest.raises(ValueError, match="input_size"):
        decode(head(ROWS))


def test_objectness_head():
    p = np.zeros((5 + 2, 4))
    p[:4, 0] = (0.5, 0.5, 0.2, 0.2)
    p[4, 0] = 0.5  # objectness
    p[5 + 1, 0] = 0.8
    (det,) = decode(p, has_objectness=True, score_threshold=0.3)
    assert det.class_id == 1 and det.score == pytest.approx(0.4)
    assert decode(p, has_objectness=True, score_threshold=0.5) == []


def test_decode_quantized_int8_head():
    p = head(ROWS)
    p[:4] /= 320.0  # an int8 export has normalized boxes
    scale, zp = 1 / 255, -128
    q = np.clip(np.round(p / scale) + zp, -128, 127).astype(np.int8)
    dets = decode(dequantize(q, scale, zp), labels=LABELS)
    assert [d.label for d in dets] == ["person", "bicycle", "car"]
    assert dets[0].box == pytest.approx((0.15, 0.15, 0.35, 0.35), abs=2 / 255)


def test_decode_8400_candidates_is_fast():
    rng = np.random.default_rng(0)
    p = np.zeros((84, 8400))
    p[:2] = rng.uniform(0, 640, (2, 8400))
    p[2:4] = rng.uniform(4, 200, (2, 8400))
    p[4:] = rng.uniform(0, 1, (80, 8400)) ** 8  # most candidates low, some high
    t0 = time.perf_counter()
    dets = decode(p, input_size=(640, 640), score_threshold=0.25, max_detections=300)
    elapsed = time.perf_counter() - t0
    assert 0 < len(dets) <= 300
    assert elapsed < 2.0, f"decode took {elapsed:.2f}s"


def test_decode_nms_formats():
    boxes = np.array([[[0.1, 0.2, 0.5, 0.6], [0.3, 0.3, 0.9, 0.9], [0, 0, 0, 0]]])
    scores = np.array([[0.8, 0.9, 0.0]])
    classes = np.array([[1.0, 2.0, 0.0]])
    dets = decode_nms(boxes, scores, classes, np.array([2]), labels=LABELS)
    assert [d.label for d in dets] == ["car", "bicycle"]
    assert dets[1].box == pytest.approx((0.2, 0.1, 0.6, 0.5))
    dets = decode_nms(boxes, scores, classes, 2, box_format="xyxy")
    assert dets[1].box == pytest.approx((0.1, 0.2, 0.5, 0.6))
    px = decode_nms(boxes * 320, scores, classes, 2, box_format="xyxy", input_size=(320, 320))
    assert px[1].box == pytest.approx((0.1, 0.2, 0.5, 0.6))
    assert (
        len(decode_nms(boxes, scores, classes, None, score_threshold=0.0)) == 2
    )  # zero box dropped
    with pytest.raises(ValueError, match="box_format"):
        decode_nms(boxes, scores, classes, 2, box_format="cxcywh")
    with pytest.raises(ValueError, match="disagree"):
        decode_nms(boxes, scores[:, :2], classes, 2)
