"""The overlay draws boxes, skeletons, classes and timings on an RGB copy."""

from __future__ import annotations

import numpy as np

from edgekit.core.keypoints import COCO_SKELETON
from edgekit.core.types import Classification, Detection, Frame, FrameResult, Keypoint, Pose
from edgekit.io.overlay import color_for, draw, render, status_text


def blank(h: int = 240, w: int = 320) -> np.ndarray:
    return np.zeros((h, w, 3), np.uint8)


def result_for(image, **kw) -> FrameResult:
    return FrameResult(Frame(image, 0, 0, "t"), **kw)


def test_draw_returns_an_annotated_copy():
    image = blank()
    det = Detection((0.25, 0.25, 0.75, 0.75), 3, 0.9, "cat")
    out = draw(image, result_for(image, detections=(det,)), show_timings=False)
    assert out is not image and out.shape == image.shape and out.dtype == np.uint8
    assert not image.any()  # input untouched
    # the box edge (left side, mid height) has the class colour, in RGB
    assert tuple(out[120, 80]) == color_for(3)
    assert tuple(out[120, 160]) == (0, 0, 0)  # inside the box stays clear
    # the label sits above the box's top-left corner
    assert out[40:60, 80:140].any()


def test_nothing_to_draw_leaves_the_image():
    image = np.full((50, 60, 3), 90, np.uint8)
    out = draw(image, result_for(image), show_timings=False)
    np.testing.assert_array_equal(out, image)


def test_pose_skeleton_edges_and_low_score_points():
    image = blank()
    kps = [Keypoint(0.0, 0.0, 0.0)] * 17
    a, b = COCO_SKELETON[0]
    kps = list(kps)
    kps[a] = Keypoint(0.2, 0.5, 0.9)
    kps[b] = Keypoint(0.8, 0.5, 0.9)
    out = draw(image, result_for(image, poses=(Pose(tuple(kps), 0.9),)), show_timings=False)
    assert out[120, 160].any()  # midpoint of the a-b edge
    assert not out[0:3, 0:3].any()  # low-score keypoints at (0, 0) are not drawn


def test_top_classes_text():
    image = blank()
    classes = (Classification(1, 0.2, "b"), Classification(0, 0.7, "a"))
    out = draw(image, result_for(image, classes=classes), show_timings=False)
    assert out[:60, :120].any() and not out[150:, :].any()


def test_timings_and_fps_line():
    image = blank()
    result = result_for(image, timings={"invoke": 12.345, "total": 20.0})
    assert status_text(result, fps=29.96) == "invoke 12.3 ms | total 20.0 ms | 30.0 fps"
    out = draw(image, result)
    assert out[-20:, :200].any()  # bottom-left status line
    assert not draw(image, result, show_timings=False).any()


def test_render_draws_the_results_own_frame():
    image = blank(60, 80)
    det = Detection((0.1, 0.1, 0.9, 0.9), 0, 0.5, "")
    out = render(result_for(image, detections=(det,)))
    assert out.shape == (60, 80, 3) and out.any()


def test_boxes_outside_the_frame_do_not_crash():
    image = blank(40, 40)
    det = Detection((-0.5, -0.5, 1.5, 1.5), 99, 1.0, "big")
    out = draw(image, result_for(image, detections=(det,)), fps=1.0)
    assert out.shape == (40, 40, 3)
