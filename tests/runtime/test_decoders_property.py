"""Property tests: decoders never crash on finite, NaN, inf or garbage-shaped inputs.

Either they return well-formed results (coordinates inside [0, 1], finite scores, sorted by score)
or they raise ValueError naming what is wrong.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgekit.core.types import Classification, Detection, Pose
from edgekit.runtime.decoders import classify, movenet, posenet, ssd, yolo

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

any_float = st.floats(allow_nan=True, allow_infinity=True, width=32)
nice_float = st.floats(-20, 20, width=32)


def arrays(shape, elements=any_float):
    return hnp.arrays(np.float32, shape, elements=elements)


garbage = arrays(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6))


def check_detections(dets):
    assert isinstance(dets, list)
    for d in dets:
        assert isinstance(d, Detection) and isinstance(d.class_id, int)
        assert all(0.0 <= v <= 1.0 for v in d.box), d.box
        assert d.box[0] <= d.box[2] and d.box[1] <= d.box[3]
        assert math.isfinite(d.score)
    scores = [d.score for d in dets]
    assert scores == sorted(scores, reverse=True)


def check_pose(p):
    assert isinstance(p, Pose)
    assert math.isfinite(p.score)
    for kp in p.keypoints:
        assert 0.0 <= kp.x <= 1.0 and 0.0 <= kp.y <= 1.0 and math.isfinite(kp.score)
    if p.box is not None:
        assert all(0.0 <= v <= 1.0 for v in p.box)


def call_or_value_error(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ValueError as exc:
        assert str(exc)  # a message, not a bare error
        return None


# --- SSD --------------------------------------------------------------------------------


@SETTINGS
@given(
    st.integers(0, 12).flatmap(
        lambda n: st.tuples(arrays((n, 4)), arrays((n,)), arrays((n,)), any_float)
    )
)
def test_ssd_postprocessed_well_shaped(data):
    boxes, classes, scores, count = data
    check_detections(
        ssd.decode_postprocessed(boxes, classes, scores, count, score_threshold=0.0, labels=["a"])
    )


@SETTINGS
@given(garbage, garbage, garbage, garbage)
def test_ssd_postprocessed_garbage(boxes, classes, scores, count):
    out = call_or_value_error(
        ssd.decode_postprocessed, boxes, classes, scores, count, score_threshold=0.1
    )
    if out is not None:
        check_detections(out)


@SETTINGS
@given(
    st.tuples(st.integers(0, 10), st.integers(2, 5)).flatmap(
        lambda s: st.tuples(arrays((s[0], 4)), arrays((s[0], s[1])), arrays((s[0], 4), nice_float))
    ),
    st.booleans(),
    st.sampled_from(["sigmoid", "softmax"]),
)
def test_ssd_raw_well_shaped(data, logits, activation):
    enc, scores, anchors = data
    anchors = np.abs(anchors) / 20.0
    out = ssd.decode_raw(
        enc, scores, anchors, score_threshold=0.3, scores_are_logits=logits, activation=activation
    )
    check_detections(out)


@SETTINGS
@given(garbage, garbage, garbage)
def test_ssd_raw_garbage(enc, scores, anchors):
    out = call_or_value_error(ssd.decode_raw, enc, scores, anchors, score_threshold=0.1)
    if out is not None:
        check_detections(out)


# --- YOLO -------------------------------------------------------------------------------


@SETTINGS
@given(
    st.tuples(st.integers(1, 4), st.integers(0, 30)).flatmap(lambda s: arrays((4 + s[0], s[1]))),
    st.booleans(),
    st.booleans(),
)
def test_yolo_well_shaped(pred, transpose, agnostic):
    p = pred.T if transpose else pred
    out = yolo.decode(
        p,
        input_size=(64, 96),
        score_threshold=0.2,
        class_agnostic=agnostic,
        num_classes=pred.shape[0] - 4,
    )
    check_detections(out)


@SETTINGS
@given(garbage, st.booleans())
def test_yolo_garbage(pred, normalized):
    out = call_or_value_error(yolo.decode, pred, input_size=(32, 32), normalized=normalized or None)
    if out is not None:
        check_detections(out)


@SETTINGS
@given(
    st.integers(0, 8).flatmap(
        lambda n: st.tuples(arrays((1, n, 4)), arrays((1, n)), arrays((1, n)), any_float)
    ),
    st.sampled_from(["yxyx", "xyxy"]),
)
def test_yolo_nms_well_shaped(data, fmt):
    boxes, scores, classes, count = data
    check_detections(
        yolo.decode_nms(boxes, scores, classes, count, box_format=fmt, input_size=(32, 32))
    )


@SETTINGS
@given(garbage, garbage, garbage, garbage)
def test_yolo_nms_garbage(boxes, scores, classes, count):
    out = call_or_value_error(yolo.decode_nms, boxes, scores, classes, count, input_size=(32, 32))
    if out is not None:
        check_detections(out)


# --- poses and classes --------------------------------------------------------------------


@SETTINGS
@given(st.one_of(arrays((1, 1, 17, 3)), garbage))
def test_movenet_any_input(kps):
    out = call_or_value_error(movenet.decode, kps)
    if out is not None:
        check_pose(out)


@SETTINGS
@given(
    st.tuples(st.integers(1, 5), st.integers(1, 6)).flatmap(
        lambda s: st.tuples(
            arrays((s[0], s[1], 17)), arrays((s[0], s[1], 34)), arrays((s[0], s[1], 64))
        )
    ),
    st.floats(0.0, 1.0),
)
def test_posenet_well_shaped(data, threshold):
    hm, so, mo = data
    poses = posenet.decode(hm, so, mo, score_threshold=threshold, max_poses=5)
    assert len(poses) <= 5
    for p in poses:
        check_pose(p)
    assert [p.score for p in poses] == sorted((p.score for p in poses), reverse=True)


@SETTINGS
@given(garbage, garbage, garbage)
def test_posenet_garbage(hm, so, mo):
    out = call_or_value_error(posenet.decode, hm, so, mo)
    for p in out or []:
        check_pose(p)


@SETTINGS
@given(
    st.one_of(arrays(hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=20)), garbage),
    st.booleans(),
)
def test_classify_any_input(scores, softmax):
    out = call_or_value_error(
        classify.decode, scores, top_k=3, apply_softmax=softmax, labels=["a", "b"]
    )
    if out is not None:
        assert len(out) <= 3
        assert all(isinstance(c, Classification) and math.isfinite(c.score) for c in out)
        assert [c.score for c in out] == sorted((c.score for c in out), reverse=True)
        if softmax:
            assert all(0.0 <= c.score <= 1.0 for c in out)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_all_non_finite_inputs_give_empty_results(value):
    assert (
        ssd.decode_postprocessed(
            np.full((3, 4), value), np.full(3, value), np.full(3, value), value
        )
        == []
    )
    assert yolo.decode(np.full((6, 10), value), input_size=(32, 32)) == []
    assert classify.decode(np.full(10, value)) == []
    check_pose(movenet.decode(np.full((1, 1, 17, 3), value)))
