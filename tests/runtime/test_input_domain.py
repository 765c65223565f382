"""The float domain of a third-party model's input (edgekit.runtime.input_domain) and the
pixel -> tensor table that composes it with the input's quantization (preprocess.input_lut)."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.runtime.input_domain import (
    FAMILY_NORMALIZATION,
    domain_fit,
    input_normalization,
)
from edgekit.runtime.preprocess import input_lut, quantize, raw_pixels_exact

ZERO_ONE, MINUS_ONE_ONE, PIXELS = (0.0, 255.0), (127.5, 127.5), (0.0, 1.0)


def detail(dtype, scale=0.0, zero_point=0):
    return {"dtype": dtype, "quantization": (scale, zero_point), "shape": np.array([1, 8, 8, 3])}


@pytest.mark.parametrize(
    ("family", "dtype", "scale", "zp", "expected"),
    [
        # the case: an Ultralytics int8 input calibrated over [-2.13, 2.64]
        ("yolo", np.int8, 0.0187, -14, ZERO_ONE),
        ("yolo", np.int8, 1 / 255, -128, ZERO_ONE),  # pixel range
        ("yolo", np.uint8, 1 / 255, 0, ZERO_ONE),
        ("yolo", np.uint8, 0.00529, 47, ZERO_ONE),  # odd zero point
        ("yolo", np.int8, 2 / 255, 0, ZERO_ONE),  # symmetric [-1, 1]: still a 0..1 model
        ("yolo", np.int8, 0.8 / 255, -128, ZERO_ONE),  # calibrated short of white
        # TF1 uint8 SSD/MobileNet/PoseNet: real = (q - 128) / 128 holds [-1, 1]
        ("ssd_postprocess", np.uint8, 1 / 128, 128, MINUS_ONE_ONE),
        ("posenet", np.uint8, 1 / 128, 128, MINUS_ONE_ONE),
        ("classify", np.int8, 0.0373, 12, MINUS_ONE_ONE),
        ("movenet", np.uint8, 1.0, 0, PIXELS),
        ("movenet", np.int8, 4.758, -14, PIXELS),
        # the quantization cannot hold the family's domain: the standard one it covers
        ("classify", np.uint8, 1.0, 0, PIXELS),  # a Keras classifier taking 0..255
        ("classify", np.int8, 1 / 255, -128, ZERO_ONE),  # a classifier taking 0..1
        ("movenet", np.uint8, 1 / 128, 128, MINUS_ONE_ONE),
    ],
)
def test_integer_inputs_take_the_family_domain_unless_it_cannot_fit(
    family, dtype, scale, zp, expected
):
    assert input_normalization(detail(dtype, scale, zp), family) == expected


def test_float_inputs_take_the_family_domain():
    for family, norm in FAMILY_NORMALIZATION.items():
        assert input_normalization(detail(np.float32), family) == norm


def test_integer_inputs_without_quantization_take_pixels():
    assert input_normalization(detail(np.uint8), "movenet") == (0.0, 1.0)
    norm = input_normalization(detail(np.int8), "yolo")
    assert quantize((np.array([0.0, 255.0]) - norm[0]) / norm[1], 0.0, 0, np.int8).tolist() == [
        -128,
        127,
    ]


def test_no_domain_fits_falls_back_to_raw_pixels():
    # range [0, 0.05]: no standard domain gets 16 levels -> pixels map onto the range as is
    norm = input_normalization(detail(np.uint8, 0.05 / 255, 0), "yolo")
    assert norm == pytest.approx((0.0, 255 / 0.05))


def test_a_declared_domain_wins():
    assert input_normalization(detail(np.uint8, 1.0, 0), "classify", (127.5, 127.5)) == (
        127.5,
        127.5,
    )


def test_domain_fit():
    fit = domain_fit(ZERO_ONE, np.int8, 0.0187, -14)
    assert fit.coverage == pytest.approx(1.0) and fit.levels == pytest.approx(1 / 0.0187)
    assert fit.covers
    fit = domain_fit(MINUS_ONE_ONE, np.uint8, 1.0, 0)
    assert fit.coverage == pytest.approx(0.5) and not fit.plausible  # one level for [0, 1]
    assert domain_fit(MINUS_ONE_ONE, np.uint8, 1 / 128, 128).covers  # top step clipped


# --- the lookup table ---------------------------------------------------------------------------


def test_raw_pixels_are_exact_only_when_they_round_correctly():
    # edgekit's own uint8 exports of [-1, 1]: scale 2/255, zero point 127: p is within half a
    # step of the ideal value for every pixel (a tie), so raw pixels go in
    assert raw_pixels_exact(MINUS_ONE_ONE, np.uint8, np.float32(2 / 255), 127)
    assert input_lut(MINUS_ONE_ONE, np.uint8, np.float32(2 / 255), 127) is None
    assert raw_pixels_exact(ZERO_ONE, np.uint8, 1 / 255, 0)
    # TF1's (q - 128) / 128 for [-1, 1]: the top pixels are a whole step off
    assert not raw_pixels_exact(MINUS_ONE_ONE, np.uint8, 1 / 128, 128)
    lut = input_lut(MINUS_ONE_ONE, np.uint8, 1 / 128, 128)
    assert lut[0] == 0 and lut[127] == 127 and lut[128] == 129 and lut[255] == 255
    # the int8 input: far from raw pixels
    assert not raw_pixels_exact(ZERO_ONE, np.int8, 0.0187, -14)


def test_int8_pixel_range_is_pixels_minus_128():
    lut = input_lut(ZERO_ONE, np.int8, np.float32(1 / 255), -128)
    np.testing.assert_array_equal(lut, np.arange(256) - 128)
    assert lut.dtype == np.int8


def test_calibrated_int8_lut_quantizes_the_float_domain():
    lut = input_lut(ZERO_ONE, np.int8, 0.0187, -14)
    pixels = np.arange(256)
    np.testing.assert_array_equal(lut, np.clip(np.rint(pixels / 255 / 0.0187) - 14, -128, 127))
    real = (lut.astype(np.float64) + 14) * 0.0187  # what the model sees
    assert np.abs(real - pixels / 255).max() <= 0.0187 / 2 + 1e-9
