"""Frame <-> model-input geometry for stretch resize and letterbox. numpy only.

One :class:`Transform` is the single source of truth for both preprocessing (how big to resize
the frame and where to pad it, in integer input pixels) and for mapping results back (normalized
model-input coordinates -> normalized frame coordinates). Coordinates are continuous and
edge-based: pixel ``i`` covers ``[i, i + 1)``, so a frame of width ``W`` resized to ``new_w``
maps ``x_px`` to ``x_px * new_w / W`` exactly (this is what ``cv2.resize`` does with its
half-pixel-centre convention).

Preprocessing with a transform ``t``::

    resized = cv2.resize(frame, (t.resized_w, t.resized_h))
    tensor = t.pad_image(resized, fill=114)   # or cv2.copyMakeBorder(top=t.pad_top, ...)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgekit.core.types import Detection, Keypoint, Pose

__all__ = [
    "RESIZE_MODES",
    "Transform",
    "detections_to_frame",
    "letterbox_transform",
    "make_transform",
    "pose_to_frame",
    "resize_transform",
]

RESIZE_MODES = ("resize", "letterbox")


def _hw(value: tuple[int, int], name: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (height, width), got {value!r}") from None
    if h <= 0 or w <= 0 or (h, w) != tuple(value):
        raise ValueError(f"{name} must be two positive integers (height, width), got {value!r}")
    return h, w


@dataclass(frozen=True, slots=True)
class Transform:
    """How a frame of ``frame_hw`` becomes a model input of ``input_hw``, and back.

    ``scale_x``/``scale_y`` are input pixels per frame pixel; ``pad_x``/``pad_y`` are the left/top
    padding in input pixels; ``resized_hw`` is the unpadded size the frame is resized to.
    """

    frame_hw: tuple[int, int]
    input_hw: tuple[int, int]
    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    resized_hw: tuple[int, int]
    mode: str = "resize"

    # --- pixel parameters for preprocessing -------------------------------------------------
    @property
    def resized_h(self) -> int:
        return self.resized_hw[0]

    @property
    def resized_w(self) -> int:
        return self.resized_hw[1]

    @property
    def pad_left(self) -> int:
        return self.pad_x

    @property
    def pad_top(self) -> int:
        return self.pad_y

    @property
    def pad_right(self) -> int:
        return self.input_hw[1] - self.resized_hw[1] - self.pad_x

    @property
    def pad_bottom(self) -> int:
        return self.input_hw[0] - self.resized_hw[0] - self.pad_y

    @property
    def is_identity(self) -> bool:
        """True when the frame already has the input size (no resize, no padding)."""
        return self.frame_hw == self.input_hw and self.pad_x == 0 and self.pad_y == 0

    def pad_image(self, resized: np.ndarray, fill: int | float = 0) -> np.ndarray:
        """Place an image already resized to ``resized_hw`` into an ``input_hw`` canvas."""
        img = np.asarray(resized)
        if img.shape[:2] != self.resized_hw:
            raise ValueError(
                f"image is {img.shape[:2]} but the transform expects {self.resized_hw}"
            )
        if self.pad_x == 0 and self.pad_y == 0 and self.resized_hw == self.input_hw:
            return img
        out = np.full((*self.input_hw, *img.shape[2:]), fill, dtype=img.dtype)
        out[self.pad_y : self.pad_y + self.resized_h, self.pad_x : self.pad_x + self.resized_w] = (
            img
        )
        return out

    # --- coordinate mapping ---------------------------------------------------------------
    def _xy_to_frame(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        in_h, in_w = self.input_hw
        fx = (x * in_w - self.pad_x) / self.resized_w
        fy = (y * in_h - self.pad_y) / self.resized_h
        return fx, fy

    def _xy_to_input(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        in_h, in_w = self.input_hw
        ix = (x * self.resized_w + self.pad_x) / in_w
        iy = (y * self.resized_h + self.pad_y) / in_h
        return ix, iy

    def points_to_frame(self, xy: np.ndarray, *, clip: bool = True) -> np.ndarray:
        """``(..., 2)`` normalized ``(x, y)`` of the model input -> normalized of the frame."""
        p = _points(xy)
        fx, fy = self._xy_to_frame(p[..., 0], p[..., 1])
        out = np.stack([fx, fy], axis=-1)
        return np.clip(out, 0.0, 1.0) if clip else out

    def points_to_input(self, xy: np.ndarray, *, clip: bool = False) -> np.ndarray:
        """Inverse of :meth:`points_to_frame`."""
        p = _points(xy)
        ix, iy = self._xy_to_input(p[..., 0], p[..., 1])
        out = np.stack([ix, iy], axis=-1)
        return np.clip(out, 0.0, 1.0) if clip else out

    def boxes_to_frame(self, xyxy: np.ndarray, *, clip: bool = True) -> np.ndarray:
        """``(N, 4)`` normalized xyxy of the model input -> normalized xyxy of the frame.

        With ``clip`` (default) parts lying in the letterbox padding are cut at the frame edge.
        """
        b = _boxes(xyxy)
        x0, y0 = self._xy_to_frame(b[:, 0], b[:, 1])
        x1, y1 = self._xy_to_frame(b[:, 2], b[:, 3])
        out = np.stack([x0, y0, x1, y1], axis=-1)
        return np.clip(out, 0.0, 1.0) if clip else out

    def boxes_to_input(self, xyxy: np.ndarray, *, clip: bool = False) -> np.ndarray:
        """Inverse of :meth:`boxes_to_frame`: normalized frame xyxy -> normalized input xyxy."""
        b = _boxes(xyxy)
        x0, y0 = self._xy_to_input(b[:, 0], b[:, 1])
        x1, y1 = self._xy_to_input(b[:, 2], b[:, 3])
        out = np.stack([x0, y0, x1, y1], axis=-1)
        return np.clip(out, 0.0, 1.0) if clip else out


def _points(xy: np.ndarray) -> np.ndarray:
    p = np.asarray(xy, dtype=np.float64)
    if p.ndim == 0 or p.shape[-1] != 2:
        raise ValueError(f"points must have shape (..., 2), got {p.shape}")
    return p


def _boxes(xyxy: np.ndarray) -> np.ndarray:
    b = np.asarray(xyxy, dtype=np.float64)
    if b.size == 0:
        return b.reshape(0, 4)
    if b.ndim == 1 and b.shape[0] == 4:
        b = b[None, :]
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {b.shape}")
    return b


def resize_transform(frame_hw: tuple[int, int], input_hw: tuple[int, int]) -> Transform:
    """Stretch the whole frame to the input (aspect ratio not kept, no padding)."""
    fh, fw = _hw(frame_hw, "frame_hw")
    ih, iw = _hw(input_hw, "input_hw")
    return Transform((fh, fw), (ih, iw), iw / fw, ih / fh, 0, 0, (ih, iw), "resize")


def letterbox_transform(frame_hw: tuple[int, int], input_hw: tuple[int, int]) -> Transform:
    """Keep the aspect ratio: scale by ``min(ih/fh, iw/fw)``, round to whole pixels, centre.

    The resized size is ``round(f * s)`` (at least 1, at most the input); the left/top padding is
    ``(input - resized) // 2`` and any odd pixel goes to the right/bottom.
    """
    fh, fw = _hw(frame_hw, "frame_hw")
    ih, iw = _hw(input_hw, "input_hw")
    s = min(ih / fh, iw / fw)
    # The limiting side is set exactly (avoids round(f * s) landing one pixel off).
    new_h = ih if ih / fh <= iw / fw else min(ih, max(1, round(fh * s)))
    new_w = iw if iw / fw <= ih / fh else min(iw, max(1, round(fw * s)))
    pad_x = (iw - new_w) // 2
    pad_y = (ih - new_h) // 2
    return Transform(
        (fh, fw), (ih, iw), new_w / fw, new_h / fh, pad_x, pad_y, (new_h, new_w), "letterbox"
    )


def make_transform(mode: str, frame_hw: tuple[int, int], input_hw: tuple[int, int]) -> Transform:
    """``mode`` is a ``ModelSpec.resize_mode``: "resize" or "letterbox"."""
    if mode == "resize":
        return resize_transform(frame_hw, input_hw)
    if mode == "letterbox":
        return letterbox_transform(frame_hw, input_hw)
    raise ValueError(f"resize mode {mode!r} is not one of {RESIZE_MODES}")


# --- decoded results (normalized model-input coordinates) -> normalized frame coordinates -----


def detections_to_frame(dets: Sequence[Detection], transform: Transform) -> tuple[Detection, ...]:
    """Detections with their boxes mapped from the model input onto the frame."""
    if not dets:
        return ()
    boxes = transform.boxes_to_frame(np.array([d.box for d in dets], dtype=np.float64))
    return tuple(
        dataclasses.replace(d, box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])))
        for d, b in zip(dets, boxes.tolist(), strict=True)
    )


def pose_to_frame(pose: Pose, transform: Transform) -> Pose:
    """A pose with its keypoints and box mapped from the model input onto the frame."""
    xy = transform.points_to_frame(np.array([(k.x, k.y) for k in pose.keypoints], dtype=np.float64))
    kps = tuple(
        Keypoint(float(x), float(y), k.score)
        for (x, y), k in zip(xy.tolist(), pose.keypoints, strict=True)
    )
    box = None
    if pose.box is not None:
        b = transform.boxes_to_frame(np.array([pose.box], dtype=np.float64))[0]
        box = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
    return Pose(kps, pose.score, box)
