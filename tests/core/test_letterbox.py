"""Frame <-> model input transforms: pixel parameters and exact round trips."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgekit.core.letterbox import (
    Transform,
    letterbox_transform,
    make_transform,
    resize_transform,
)

SIZES = [
    (480, 640),
    (640, 480),
    (360, 480),
    (1080, 1920),
    (1920, 1080),
    (300, 300),
    (610, 500),
    (1, 1000),
    (1000, 1),
]
INPUTS = [(300, 300), (320, 320), (192, 192), (481, 641), (224, 320), (640, 640)]


def test_letterbox_pixel_parameters_landscape():
    t = letterbox_transform((480, 640), (320, 320))
    assert t.resized_hw == (240, 320)
    assert (t.pad_x, t.pad_y) == (0, 40)
    assert (t.pad_left, t.pad_top, t.pad_right, t.pad_bottom) == (0, 40, 0, 40)
    assert t.scale_x == pytest.approx(0.5) and t.scale_y == pytest.approx(0.5)
    assert t.mode == "letterbox"


def test_letterbox_odd_padding_goes_right_bottom():
    t = letterbox_transform((100, 51), (100, 100))
    assert t.resized_hw == (100, 51)
    assert (t.pad_left, t.pad_right) == (24, 25)
    t = letterbox_transform((1080, 1920), (300, 300))
    assert t.resized_hw == (169, 300)  # round(1080 * 300 / 1920) = round(168.75)
    assert t.pad_top + t.resized_h + t.pad_bottom == 300
    assert (t.pad_top, t.pad_bottom) == (65, 66)


def test_resize_transform_has_no_padding():
    t = resize_transform((480, 640), (300, 300))
    assert t.resized_hw == (300, 300)
    assert (t.pad_x, t.pad_y, t.pad_right, t.pad_bottom) == (0, 0, 0, 0)
    assert t.scale_x == pytest.approx(300 / 640) and t.scale_y == pytest.approx(300 / 480)
    np.testing.assert_allclose(t.boxes_to_frame([[0.1, 0.2, 0.3, 0.4]]), [[0.1, 0.2, 0.3, 0.4]])


def test_same_size_is_identity():
    for make in (letterbox_transform, resize_transform):
        t = make((300, 300), (300, 300))
        assert t.is_identity
        pts = np.array([[0.25, 0.75]])
        np.testing.assert_array_equal(t.points_to_frame(pts), pts)


def test_transform_is_frozen():
    t = letterbox_transform((480, 640), (320, 320))
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.pad_x = 3  # type: ignore[misc]


def test_make_transform_dispatch_and_errors():
    assert make_transform("letterbox", (480, 640), (320, 320)).mode == "letterbox"
    assert make_transform("resize", (480, 640), (320, 320)).mode == "resize"
    with pytest.raises(ValueError, match="resize mode"):
        make_transform("crop", (480, 640), (320, 320))
    with pytest.raises(ValueError, match="frame_hw"):
        letterbox_transform((0, 640), (320, 320))
    with pytest.raises(ValueError, match="input_hw"):
        resize_transform((480, 640), (320,))


def test_letterbox_known_mapping():
    t = letterbox_transform((480, 640), (320, 320))
    # The input's top padding band (y < 40/320) maps above the frame; the centre maps to centre.
    np.testing.assert_allclose(t.points_to_frame([[0.5, 0.5]]), [[0.5, 0.5]])
    np.testing.assert_allclose(t.points_to_frame([[0.0, 40 / 320]]), [[0.0, 0.0]])
    np.testing.assert_allclose(t.points_to_frame([[1.0, 280 / 320]]), [[1.0, 1.0]])
    np.testing.assert_allclose(t.points_to_frame([[0.5, 0.0]], clip=False), [[0.5, -40 / 240]])
    np.testing.assert_allclose(t.points_to_frame([[0.5, 0.0]]), [[0.5, 0.0]])  # clipped


def test_boxes_clip_in_padding():
    t = letterbox_transform((480, 640), (320, 320))
    out = t.boxes_to_frame(np.array([[0.0, 0.0, 1.0, 1.0]]))
    np.testing.assert_allclose(out, [[0.0, 0.0, 1.0, 1.0]])
    assert t.boxes_to_frame(np.zeros((0, 4))).shape == (0, 4)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        t.boxes_to_frame(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        t.points_to_frame(np.zeros((2, 3)))


@pytest.mark.parametrize("frame_hw", SIZES)
@pytest.mark.parametrize("input_hw", INPUTS)
@pytest.mark.parametrize("mode", ["letterbox", "resize"])
def test_round_trip_exact(frame_hw, input_hw, mode):
    t = make_transform(mode, frame_hw, input_hw)
    assert t.pad_left >= 0 and t.pad_right >= 0 and t.pad_top >= 0 and t.pad_bottom >= 0
    assert t.pad_left + t.resized_w + t.pad_right == input_hw[1]
    assert t.pad_top + t.resized_h + t.pad_bottom == input_hw[0]
    if mode == "letterbox":
        # One side fills the input exactly, the other keeps the aspect ratio to within a pixel.
        assert t.resized_h == input_hw[0] or t.resized_w == input_hw[1]
        s = min(input_hw[0] / frame_hw[0], input_hw[1] / frame_hw[1])
        assert abs(t.resized_w - max(1.0, frame_hw[1] * s)) <= 0.5 + 1e-9
        assert abs(t.resized_h - max(1.0, frame_hw[0] * s)) <= 0.5 + 1e-9
        assert abs(t.pad_left - t.pad_right) <= 1 and abs(t.pad_top - t.pad_bottom) <= 1
    rng = np.random.default_rng(hash((frame_hw, input_hw)) % 2**32)
    pts = rng.uniform(0, 1, (50, 2))
    back = t.points_to_frame(t.points_to_input(pts), clip=False)
    np.testing.assert_allclose(back, pts, atol=1e-9, rtol=0)
    xy = rng.uniform(0, 1, (30, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 1 - xy)], axis=1)
    np.testing.assert_allclose(
        t.boxes_to_frame(t.boxes_to_input(boxes), clip=False), boxes, atol=1e-9, rtol=0
    )
    inp = rng.uniform(0, 1, (30, 4))
    np.testing.assert_allclose(
        t.boxes_to_input(t.boxes_to_frame(inp, clip=False)), inp, atol=1e-9, rtol=0
    )
    # The frame's corners land on the edges of the resized (unpadded) region, in input pixels.
    corners = t.points_to_input([[0.0, 0.0], [1.0, 1.0]]) * [input_hw[1], input_hw[0]]
    np.testing.assert_allclose(
        corners, [[t.pad_x, t.pad_y], [t.pad_x + t.resized_w, t.pad_y + t.resized_h]], atol=1e-9
    )


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(st.integers(1, 4000), st.integers(1, 4000)),
    st.tuples(st.integers(1, 1024), st.integers(1, 1024)),
)
def test_letterbox_property(frame_hw, input_hw):
    t = letterbox_transform(frame_hw, input_hw)
    assert 1 <= t.resized_h <= input_hw[0] and 1 <= t.resized_w <= input_hw[1]
    assert min(t.pad_left, t.pad_right, t.pad_top, t.pad_bottom) >= 0
    pts = np.array([[0.0, 0.0], [0.3, 0.7], [1.0, 1.0]])
    np.testing.assert_allclose(
        t.points_to_frame(t.points_to_input(pts), clip=False), pts, atol=1e-9
    )


def test_pad_image_places_content():
    t = letterbox_transform((2, 4), (4, 4))
    assert t.resized_hw == (2, 4) and t.pad_top == 1
    img = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3)
    out = t.pad_image(img, fill=114)
    assert out.shape == (4, 4, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[1:3], img)
    assert (out[0] == 114).all() and (out[3] == 114).all()
    with pytest.raises(ValueError, match="expects"):
        t.pad_image(np.zeros((3, 4, 3), np.uint8))


def test_pixel_mapping_matches_resize_of_a_marker():
    """A marker at a known frame pixel, resized + padded with nearest neighbour, is found where
    the transform says (within the resize's quantization)."""
    frame = np.zeros((480, 640), np.uint8)
    frame[100:140, 400:440] = 255
    t = letterbox_transform(frame.shape, (320, 320))
    ys = (np.arange(t.resized_h) + 0.5) * frame.shape[0] / t.resized_h
    xs = (np.arange(t.resized_w) + 0.5) * frame.shape[1] / t.resized_w
    resized = frame[ys.astype(int)][:, xs.astype(int)]
    canvas = t.pad_image(resized)
    yy, xx = np.nonzero(canvas)
    box_in = np.array([[xx.min(), yy.min(), xx.max() + 1, yy.max() + 1]]) / 320.0
    box_frame = t.boxes_to_frame(box_in)[0] * [640, 480, 640, 480]
    np.testing.assert_allclose(box_frame, [400, 100, 440, 140], atol=2.0)


def test_transform_dataclass_fields_are_the_agreed_ones():
    names = {f.name for f in dataclasses.fields(Transform)}
    assert {"frame_hw", "input_hw", "scale_x", "scale_y", "pad_x", "pad_y"} <= names
