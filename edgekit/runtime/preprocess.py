"""Frame -> model input: resize or letterbox (OpenCV), then normalize and quantize in one lookup.

Normalization (``x = (pixel - mean) / std``) followed by quantization
(``q = round(x / scale) + zero_point``) is a function of the pixel value alone, so it is
precomputed as a 256-entry table and applied with ``cv2.LUT`` (one pass, no float
intermediates). When raw pixels are exact for that composition (:func:`raw_pixels_exact`, e.g.
a uint8 input quantized over exactly the model's float domain) the resized image is used as is.

RGB in, RGB out: no channel swap happens here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edgekit.core.letterbox import Transform, make_transform

__all__ = ["Preprocessor", "dequantize", "input_lut", "quantize", "raw_pixels_exact"]


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype | type) -> np.ndarray:
    """Real values -> integer tensor values (round to nearest, saturate to ``dtype``)."""
    dt = np.dtype(dtype)
    if not np.issubdtype(dt, np.integer):
        return np.asarray(x, dtype=dt)
    info = np.iinfo(dt)
    q = np.rint(np.asarray(x, dtype=np.float64) / scale) + zero_point if scale else np.rint(x)
    return np.clip(q, info.min, info.max).astype(dt)


def dequantize(
    q: np.ndarray,
    scale: float | Sequence[float] | np.ndarray,
    zero_point: int | Sequence[int] | np.ndarray,
    *,
    axis: int = -1,
) -> np.ndarray:
    """Integer tensor values -> float32 reals, ``(q - zero_point) * scale``; float tensors (or
    scale 0, TFLite's marker for a float tensor) pass through as float32.

    ``scale``/``zero_point`` are numbers, or per-channel arrays applied along ``axis``.
    """
    arr = np.asarray(q)
    s = np.asarray(scale, dtype=np.float64).reshape(-1)
    z = np.asarray(zero_point, dtype=np.float64).reshape(-1)
    if arr.dtype.kind == "f" or not s.any():
        return arr.astype(np.float32, copy=False)
    if s.size == 1 and z.size <= 1:
        zp = np.float32(z[0]) if z.size else np.float32(0)
        return (arr.astype(np.float32) - zp) * np.float32(s[0])
    if arr.ndim == 0:
        raise ValueError("per-channel quantization needs an array with a channel axis")
    n = arr.shape[axis]
    if s.size not in (1, n) or z.size not in (0, 1, n):
        raise ValueError(f"per-channel scale/zero_point do not match axis {axis} of size {n}")
    shape = [1] * arr.ndim
    shape[axis] = -1
    s = np.broadcast_to(s, (n,)).reshape(shape).astype(np.float32)
    z = np.broadcast_to(z if z.size else np.zeros(1), (n,)).reshape(shape).astype(np.float32)
    return (arr.astype(np.float32) - z) * s


def raw_pixels_exact(
    normalization: tuple[float, float], dtype: np.dtype | type, scale: float, zero_point: int
) -> bool:
    """True when feeding raw pixels (``p`` as uint8, ``p - 128`` as int8) is exact: for every
    pixel it is a correctly rounded (and saturated) quantization of ``(p - mean) / std``, ties
    either way. Old uint8 models declared ``real = (q - 128) / 128`` for a ``[-1, 1]`` domain
    are not: their top pixels are a whole step off."""
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.uint8), np.dtype(np.int8)) or not scale:
        return False
    mean, std = normalization
    pixels = np.arange(256, dtype=np.float64)
    info = np.iinfo(dt)
    ideal = np.clip((pixels - mean) / std / scale + zero_point, info.min, info.max)
    raw = pixels + info.min  # uint8: p, int8: p - 128
    return bool(np.all(np.abs(ideal - raw) <= 0.5 + 1e-3))  # float32 scales: not exactly 2/255


def input_lut(
    normalization: tuple[float, float], dtype: np.dtype | type, scale: float, zero_point: int
) -> np.ndarray | None:
    """The 256-entry table pixel -> tensor value, or ``None`` when it is the identity (uint8).

    Raw pixels (identity for uint8, ``p - 128`` for int8) are used when they are exact
    (:func:`raw_pixels_exact`), so a quantization whose zero point sits half a step off does
    not merge neighbouring pixels by round-half-to-even."""
    dt = np.dtype(dtype)
    if raw_pixels_exact(normalization, dt, scale, zero_point):
        return None if dt == np.uint8 else (np.arange(256) - 128).astype(np.int8)
    mean, std = normalization
    x = (np.arange(256, dtype=np.float64) - mean) / std
    lut = quantize(x, scale, zero_point, dt)
    if lut.dtype == np.uint8 and np.array_equal(lut, np.arange(256)):
        return None
    return lut


@dataclass(frozen=True)
class Preprocessor:
    """Turns an RGB uint8 image into a ``[1, H, W, C]`` input tensor and its :class:`Transform`."""

    input_hw: tuple[int, int]
    channels: int = 3
    resize_mode: str = "resize"
    lut: np.ndarray | None = None
    dtype: np.dtype | type = np.uint8
    fill: int = 0
    interpolation: int = cv2.INTER_LINEAR

    @classmethod
    def for_input(
        cls,
        detail: dict,
        *,
        normalization: tuple[float, float],
        resize_mode: str,
        fill: int = 0,
    ) -> Preprocessor:
        """Build from an interpreter input detail (``shape``, ``dtype``, ``quantization``)."""
        shape = tuple(int(v) for v in detail["shape"])
        if len(shape) != 4:
            raise ValueError(f"model input must be [1, H, W, C], got {list(shape)}")
        scale, zero_point = detail.get("quantization", (0.0, 0))
        dtype = np.dtype(detail["dtype"])
        return cls(
            input_hw=(shape[1], shape[2]),
            channels=shape[3],
            resize_mode=resize_mode,
            lut=input_lut(normalization, dtype, float(scale), int(zero_point)),
            dtype=dtype,
            fill=fill,
        )

    def transform(self, frame_hw: tuple[int, int]) -> Transform:
        return make_transform(self.resize_mode, frame_hw, self.input_hw)

    def resized_hw(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """(height, width) this model resizes a ``frame_hw`` frame to before any padding: what
        a camera's low-resolution stream and :class:`~edgekit.io.sources.LoresSource` deliver,
        so that no resize is left for the inference thread."""
        h, w = self.transform(frame_hw).resized_hw
        return int(h), int(w)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, Transform]:
        img = _as_rgb(image, self.channels)
        t = self.transform(img.shape[:2])
        if t.resized_hw != img.shape[:2]:
            img = cv2.resize(img, (t.resized_w, t.resized_h), interpolation=self.interpolation)
        if t.resized_hw != t.input_hw:
            img = cv2.copyMakeBorder(
                img,
                t.pad_top,
                t.pad_bottom,
                t.pad_left,
                t.pad_right,
                cv2.BORDER_CONSTANT,
                value=(self.fill,) * 4,
            )
        if img.ndim == 2:
            img = img[:, :, None]
        if self.lut is not None:
            img = _apply_lut(img, self.lut)
        elif img.dtype != self.dtype:
            img = img.astype(self.dtype)
        return img[None], t


def _apply_lut(img: np.ndarray, lut: np.ndarray) -> np.ndarray:
    if lut.dtype in (np.uint8, np.int8, np.float32, np.int16):
        out = cv2.LUT(img, lut)
        return out if out.ndim == img.ndim else out.reshape(img.shape)
    return lut[img]


def _as_rgb(image: np.ndarray, channels: int) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image, got dtype {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    elif img.ndim == 2 and channels == 3:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if channels == 1 and img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != channels):
        raise ValueError(f"expected an HxWx3 RGB image, got shape {img.shape}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"image is empty: shape {img.shape}")
    return img
