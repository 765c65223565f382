"""Draw a FrameResult onto its frame: boxes with labels and scores, pose skeletons, top classes,
and an optional latency / FPS line. OpenCV drawing on an RGB copy; the input is never modified.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edgekit.core.keypoints import COCO_SKELETON
from edgekit.core.types import (
    Classification,
    Detection,
    FrameResult,
    Pose,
    pick_stages,
    to_pixels,
)

# A fixed, high-contrast RGB palette; class id i uses PALETTE[i % len(PALETTE)].
PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 56, 56),
    (255, 157, 151),
    (255, 112, 31),
    (255, 178, 29),
    (207, 210, 49),
    (72, 249, 10),
    (146, 204, 23),
    (61, 219, 134),
    (26, 147, 52),
    (0, 212, 187),
    (44, 153, 168),
    (0, 194, 255),
    (52, 69, 147),
    (100, 115, 255),
    (0, 24, 236),
    (132, 56, 255),
    (82, 0, 133),
    (203, 56, 255),
    (255, 149, 200),
    (255, 55, 199),
)
FONT = cv2.FONT_HERSHEY_SIMPLEX
KEYPOINT_THRESHOLD = 0.2
#: The stages the status line shows (core.types.STAGES has what each means).
STATUS_STAGES = pick_stages("invoke", "total")


def color_for(class_id: int) -> tuple[int, int, int]:
    return PALETTE[int(class_id) % len(PALETTE)]


def _scale(image: np.ndarray) -> tuple[float, int]:
    """Font scale and line thickness that stay readable from 240p to 4K."""
    short = min(image.shape[:2])
    font_scale = max(0.35, short / 900.0)
    return font_scale, max(1, round(short / 360))


def _label(
    image: np.ndarray,
    text: str,
    x: int,
    y: int,
    color: tuple[int, int, int],
    font_scale: float,
    thickness: int,
) -> None:
    """Text on a filled box whose bottom-left corner is (x, y), kept inside the image."""
    (tw, th), base = cv2.getTextSize(text, FONT, font_scale, max(1, thickness - 1))
    h, w = image.shape[:2]
    x = int(min(max(x, 0), max(w - tw - 2, 0)))
    y = int(min(max(y, th + base + 2), h - 1))
    cv2.rectangle(image, (x, y - th - base - 2), (x + tw + 2, y), color, -1)
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(
        image,
        text,
        (x + 1, y - base - 1),
        FONT,
        font_scale,
        ink,
        max(1, thickness - 1),
        cv2.LINE_AA,
    )


def draw_detections(image: np.ndarray, detections: Sequence[Detection]) -> None:
    """Boxes, ``label score`` (and ``#track``) in place on an RGB image."""
    h, w = image.shape[:2]
    font_scale, thickness = _scale(image)
    for det in detections:
        x0, y0, x1, y1 = (round(v) for v in to_pixels(det.box, w, h))
        color = color_for(det.class_id)
        cv2.rectangle(image, (x0, y0), (x1, y1), color, thickness)
        name = det.label or str(det.class_id)
        text = f"{name} {det.score:.2f}"
        if det.track_id is not None:
            text = f"#{det.track_id} {text}"
        _label(image, text, x0, y0, color, font_scale, thickness)


def draw_poses(
    image: np.ndarray,
    poses: Sequence[Pose],
    *,
    edges: Sequence[tuple[int, int]] = COCO_SKELETON,
    threshold: float = KEYPOINT_THRESHOLD,
) -> None:
    """Skeleton edges and keypoints whose score reaches ``threshold``, in place."""
    h, w = image.shape[:2]
    _, thickness = _scale(image)
    radius = thickness + 1
    for n, pose in enumerate(poses):
        color = color_for(n)
        points = [(round(k.x * w), round(k.y * h), k.score) for k in pose.keypoints]
        for a, b in edges:
            if a < len(points) and b < len(points):
                (xa, ya, sa), (xb, yb, sb) = points[a], points[b]
                if sa >= threshold and sb >= threshold:
                    cv2.line(image, (xa, ya), (xb, yb), color, thickness, cv2.LINE_AA)
        for x, y, s in points:
            if s >= threshold:
                cv2.circle(image, (x, y), radius, (255, 255, 255), -1, cv2.LINE_AA)
                cv2.circle(image, (x, y), radius, color, 1, cv2.LINE_AA)
        if pose.box is not None:
            x0, y0, x1, y1 = (round(v) for v in to_pixels(pose.box, w, h))
            cv2.rectangle(image, (x0, y0), (x1, y1), color, 1)


def draw_classes(image: np.ndarray, classes: Sequence[Classification], *, top: int = 3) -> None:
    """The ``top`` classes, best first, as lines of text in the top-left corner."""
    font_scale, thickness = _scale(image)
    line = int(30 * font_scale) + 8
    for i, cls in enumerate(sorted(classes, key=lambda c: -c.score)[:top]):
        name = cls.label or str(cls.class_id)
        _label(
            image, f"{name} {cls.score:.2f}", 4, (i + 1) * line, (32, 32, 32), font_scale, thickness
        )


def status_text(result: FrameResult, fps: float | None = None) -> str:
    """``"invoke 25.1 ms | total 31.0 ms | 29.8 fps"`` from whatever is known."""
    parts = [f"{k} {result.timings[k]:.1f} ms" for k in STATUS_STAGES if k in result.timings]
    if fps is not None:
        parts.append(f"{fps:.1f} fps")
    return " | ".join(parts)


def draw(
    image_rgb: np.ndarray,
    result: FrameResult,
    *,
    fps: float | None = None,
    show_timings: bool = True,
    top_classes: int = 3,
) -> np.ndarray:
    """An annotated copy of ``image_rgb`` (normally ``result.frame.image``)."""
    out = np.ascontiguousarray(image_rgb).copy()
    draw_detections(out, result.detections)
    draw_poses(out, result.poses)
    if result.classes:
        draw_classes(out, result.classes, top=top_classes)
    text = status_text(result, fps) if show_timings else ""
    if text:
        font_scale, thickness = _scale(out)
        _label(out, text, 4, out.shape[0] - 4, (0, 0, 0), font_scale, thickness)
    return out


def render(result: FrameResult) -> np.ndarray:
    """The loop's default renderer: ``draw(result.frame.image, result)``."""
    return draw(result.frame.image, result)
