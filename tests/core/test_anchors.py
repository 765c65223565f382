"""SSD anchors: counts, values, order, and agreement with a real TF OD API model's anchors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from shared_data import shared_path

from edgekit.core.anchors import (
    anchor_box_specs,
    num_anchors_per_location,
    ssd_anchors,
    ssd_feature_sizes,
)


def test_feature_sizes_follow_same_padding():
    assert ssd_feature_sizes(320) == [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
    assert ssd_feature_sizes((300, 200)) == [(19, 13), (10, 7), (5, 4), (3, 2), (2, 1), (1, 1)]


def test_counts_of_the_standard_layouts():
    assert ssd_anchors(300, [19, 10, 5, 3, 2, 1]).shape == (1917, 4)  # SSD MobileNet 300
    assert ssd_anchors(320).shape == (2034, 4)  # SSDLite 320
    assert num_anchors_per_location(6) == [3, 6, 6, 6, 6, 6]
    assert num_anchors_per_location(3, reduce_boxes_in_lowest_layer=False) == [6, 6, 6]


def test_values_and_order():
    a = ssd_anchors(300, [19, 10, 5, 3, 2, 1])
    assert a.dtype == np.float32
    # first cell of the first layer: (0.1, 1), (0.2, 2), (0.2, 1/2)
    np.testing.assert_allclose(a[0], [0.5 / 19, 0.5 / 19, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(a[1, 2:], [0.2 / math.sqrt(2), 0.2 * math.sqrt(2)], rtol=1e-6)
    # next anchor triple is the next cell along x (row-major y, x, box)
    np.testing.assert_allclose(a[3, :2], [0.5 / 19, 1.5 / 19], rtol=1e-6)
    np.testing.assert_allclose(a[3 * 19, :2], [1.5 / 19, 0.5 / 19], rtol=1e-6)
    # last layer is 1x1 at scale 0.95 and its interpolated box sqrt(0.95 * 1.0)
    last = a[-6:]
    np.testing.assert_allclose(last[:, :2], 0.5)
    np.testing.assert_allclose(last[0, 2:], [0.95, 0.95], rtol=1e-6)
    np.testing.assert_allclose(last[-1, 2:], [math.sqrt(0.95), math.sqrt(0.95)], rtol=1e-6)


def test_scales_are_linear_between_min_and_max():
    specs = anchor_box_specs(5, min_scale=0.1, max_scale=0.9)
    assert [s[0][0] for s in specs[1:]] == pytest.approx([0.3, 0.5, 0.7, 0.9])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input_size": 0},
        {"input_size": 300, "feature_sizes": [0]},
        {"input_size": 300, "min_scale": 0.0},
    ],
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        ssd_anchors(**kwargs)


@pytest.mark.shared
def test_matches_the_anchors_inside_the_tf_od_api_ssd_model():
    """The quantized COCO SSD MobileNet V1 carries its 1917 anchors as a constant input of
    TFLite_Detection_PostProcess: ours must equal them to within half a quantization step."""
    path = shared_path("models", "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite")
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    it = litert.Interpreter(model_path=str(path))
    it.allocate_tensors()
    op = next(o for o in it._get_ops_details() if o["op_name"] == "TFLite_Detection_PostProcess")
    idx = int(op["inputs"][2])
    detail = next(t for t in it.get_tensor_details() if t["index"] == idx)
    scale, zero = detail["quantization"]
    theirs = (it.get_tensor(idx).astype(np.float64) - zero) * scale
    ours = ssd_anchors(300, [19, 10, 5, 3, 2, 1])
    assert theirs.shape == ours.shape
    assert np.abs(theirs - ours).max() <= scale / 2 + 1e-6
