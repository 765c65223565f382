"""Shared decoder helpers: dequantize, labels, detection building."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.runtime.decoders import DECODER_NAMES
from edgekit.runtime.decoders.common import label_for, make_detections
from edgekit.runtime.preprocess import dequantize


def test_dequantize_uint8_and_int8():
    q = np.array([0, 128, 255], np.uint8)
    out = dequantize(q, 0.5, 128)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [-64.0, 0.0, 63.5])
    np.testing.assert_allclose(
        dequantize(np.array([-128, 0, 127], np.int8), 0.1, -128), [0.0, 12.8, 25.5], rtol=1e-6
    )


def test_dequantize_float_tensor_passthrough():
    x = np.array([1.5, -2.0], np.float32)
    np.testing.assert_array_equal(dequantize(x, 0.0, 0), x)
    np.testing.assert_array_equal(dequantize(x, np.array([]), np.array([])), x)


def test_dequantize_per_channel():
    q = np.array([[10, 20], [30, 40]], np.int8)
    out = dequantize(q, np.array([0.5, 2.0]), np.array([0, 10]))
    np.testing.assert_allclose(out, [[5.0, 20.0], [15.0, 60.0]])
    out = dequantize(q, np.array([0.5, 2.0]), 0, axis=0)
    np.testing.assert_allclose(out, [[5.0, 10.0], [60.0, 80.0]])
    with pytest.raises(ValueError, match="per-channel"):
        dequantize(q, np.array([1.0, 2.0, 3.0]), 0)


def test_label_for():
    assert label_for(["a", "b"], 1) == "b"
    assert label_for(["bg", "a"], 0, 1) == "a"
    assert label_for(["a"], 5) == ""
    assert label_for(None, 0) == ""
    assert label_for(["a"], -1) == ""


def test_make_detections_orders_corners_clips_and_sorts():
    dets = make_detections(
        np.array(
            [
                [0.5, 0.6, 0.1, 0.2],
                [-1.0, -1.0, 2.0, 2.0],
                [1.2, 0.0, 1.5, 1.0],
                [0.1, np.inf, 0.2, 0.3],
            ]
        ),
        np.array([0.5, 0.7, 0.9, 0.9]),
        np.array([1, 2, 3, 4]),
        labels=["a", "b", "c"],
    )
    assert [d.class_id for d in dets] == [2, 1]
    assert dets[0].box == (0.0, 0.0, 1.0, 1.0)
    assert dets[1].box == pytest.approx((0.1, 0.2, 0.5, 0.6))
    assert dets[1].label == "b"


def test_decoder_names_match_model_spec_doc():
    assert set(DECODER_NAMES) == {
        "ssd_postprocess",
        "ssd_raw",
        "yolo",
        "yolo_nms",
        "movenet",
        "posenet",
        "classify",
    }
