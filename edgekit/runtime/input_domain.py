"""Which float values a third-party model's input expects (its float domain).

A model family fixes the float domain its networks were trained on: YOLO (Ultralytics) takes
pixels / 255 in ``[0, 1]``; SSD, PoseNet and MobileNet-family classifiers take ``[-1, 1]``;
MoveNet takes ``[0, 255]``. The domain is a normalization ``(mean, std)`` of 0..255 pixels
(``x = (pixel - mean) / std``). An integer input does not change the domain: its quantization
only says which real value each integer stands for, and preprocessing composes the two
(:func:`edgekit.runtime.preprocess.input_lut`), feeding raw pixels only where that is exact.

The quantization still tells which domains are plausible: ``scale=1, zero_point=0`` cannot hold
``[-1, 1]`` with more than two levels. So the family's domain is kept when the input's
quantization covers it (:data:`FULL_COVERAGE` of it, at least :data:`MIN_LEVELS` levels);
otherwise the standard domain the quantization covers best; otherwise the family's domain if
the quantization holds at least half of it; and raw pixels (the quantization's own range) only
when no domain fits at all. A domain declared by the model's metadata wins over all of this.
Pure numpy, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edgekit.runtime.decoders import DECODERS
from edgekit.runtime.decoders.common import PIXELS_0_1, PIXELS_0_255, PIXELS_PM1

__all__ = [
    "FAMILY_NORMALIZATION",
    "STANDARD_DOMAINS",
    "DomainFit",
    "domain_fit",
    "input_normalization",
]

Normalization = tuple[float, float]

#: Float domain of each decoder family (what its float model was trained on): each
#: decoder's ``input_domain`` in :data:`edgekit.runtime.decoders.DECODERS`.
FAMILY_NORMALIZATION: Mapping[str, Normalization] = {
    name: decoder.input_domain for name, decoder in DECODERS.items()
}

#: The domains tried when the family's does not fit the quantization, in order of preference.
STANDARD_DOMAINS: tuple[Normalization, ...] = (PIXELS_0_1, PIXELS_PM1, PIXELS_0_255)

MIN_LEVELS = 16  # a domain resolved by fewer integer levels is not what the model was fed
FULL_COVERAGE = 0.9  # share of a domain the quantization must represent to "cover" it
MIN_COVERAGE = 0.5


@dataclass(frozen=True, slots=True)
class DomainFit:
    """How an integer input's quantization represents a float domain.

    ``coverage``: the share of the domain inside the quantization's range (0..1);
    ``levels``: how many integer steps span the represented part.
    """

    coverage: float
    levels: float

    @property
    def covers(self) -> bool:
        return self.coverage >= FULL_COVERAGE and self.levels >= MIN_LEVELS

    @property
    def plausible(self) -> bool:
        return self.coverage >= MIN_COVERAGE and self.levels >= MIN_LEVELS


def domain_fit(
    normalization: Normalization, dtype: np.dtype | type, scale: float, zero_point: int
) -> DomainFit:
    """How well ``dtype`` quantized with ``(scale, zero_point)`` represents the domain of
    ``normalization`` (pixels 0..255 mapped by ``(pixel - mean) / std``)."""
    info = np.iinfo(np.dtype(dtype))
    mean, std = normalization
    lo, hi = sorted(((0.0 - mean) / std, (255.0 - mean) / std))
    r_lo, r_hi = (info.min - zero_point) * scale, (info.max - zero_point) * scale
    inside = max(0.0, min(hi, r_hi) - max(lo, r_lo))
    width = hi - lo
    return DomainFit(inside / width if width > 0 else 0.0, inside / scale if scale else 0.0)


def _raw_pixels(dtype: np.dtype, scale: float, zero_point: int) -> Normalization:
    """The normalization under which pixel ``p`` becomes the integer ``p`` (uint8) or
    ``p - 128`` (int8, and other signed types shifted to their minimum)."""
    info = np.iinfo(dtype)
    offset = -int(info.min)  # 0 for unsigned types, 128 for int8
    if not scale:
        return (float(offset), 1.0)
    return (float(zero_point + offset), float(1.0 / scale))


def input_normalization(
    detail: Mapping, family: str, declared: Normalization | None = None
) -> Normalization:
    """The ``(mean, std)`` that maps 0..255 pixels onto what the input of a third-party model
    of ``family`` (a decoder name) expects, given its interpreter input ``detail`` (``dtype``,
    ``quantization``). ``declared`` (from the model's metadata) is taken as is."""
    if declared is not None:
        return (float(declared[0]), float(declared[1]))
    decoder = DECODERS.get(family)
    family_norm = decoder.input_domain if decoder is not None else PIXELS_PM1
    dtype = np.dtype(detail["dtype"])
    if dtype.kind not in "iu":
        return family_norm
    scale, zero_point = detail.get("quantization", (0.0, 0))
    scale, zero_point = float(scale), int(zero_point)
    if not scale or not np.isfinite(scale) or scale < 0:
        return _raw_pixels(dtype, 0.0, 0)  # an integer input without quantization: pixels
    fits = {norm: domain_fit(norm, dtype, scale, zero_point) for norm in STANDARD_DOMAINS}
    fits.setdefault(family_norm, domain_fit(family_norm, dtype, scale, zero_point))
    if fits[family_norm].covers:
        return family_norm
    covering = [norm for norm in STANDARD_DOMAINS if fits[norm].covers]
    if covering:  # the one spanning the most levels: what the quantization was calibrated on
        return max(covering, key=lambda norm: fits[norm].levels)
    if fits[family_norm].plausible:
        return family_norm
    return _raw_pixels(dtype, scale, zero_point)
