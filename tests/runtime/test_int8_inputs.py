"""Third-party integer inputs are fed from the family's float domain through the model's own
scale and zero point: quantized twins of small float models (tests/model_corpus.py), at pixel-
range, calibrated and odd input quantizations, uint8 and int8, give the float twin's results
within int8 error, and the old "raw pixels whatever the quantization" feed visibly does not."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from model_corpus import DOMAINS, FAMILIES, detection_differences

from edgekit.runtime.input_domain import _raw_pixels
from edgekit.runtime.model import Model

pytestmark = pytest.mark.tf

SCENES = 6
THRESHOLD = 0.5


def scenes(corpus, size: int) -> list[np.ndarray]:
    return corpus.images(size, n=SCENES, seed=100)  # not the calibration images


def raw_pixel_feed(model: Model) -> Model:
    """The same interpreter fed as before this fix: pixels (minus 128 for int8) whatever the
    input's quantization."""
    d = model.input_details[0]
    norm = _raw_pixels(np.dtype(d["dtype"]), *d["quantization"])
    return Model(
        model.interpreter,
        dataclasses.replace(model.spec, normalization=norm),
        backend=model.backend,
    )


@pytest.mark.parametrize(
    ("family", "quant"),
    [(f, q) for f, (_, _, _, quants) in FAMILIES.items() for q in quants if q != "float"],
)
def test_the_family_float_domain_is_inferred_at_every_quantization(corpus, family, quant):
    model = Model.load(corpus.path(family, quant))
    assert model.spec.normalization == DOMAINS[family]
    # calibrated on exactly the domain, uint8: raw pixels are exact, no lookup table
    assert (model.preprocessor.lut is None) == (quant == "u8_pixel")


def yolo_differences(reference: Model, model: Model, images) -> tuple[list[str], int]:
    problems, confident = [], 0
    for img in images:
        ref = reference.predict(img, score_threshold=THRESHOLD - 0.1).detections
        got = model.predict(img, score_threshold=THRESHOLD - 0.1).detections
        confident += sum(d.score >= THRESHOLD + 0.1 for d in ref)
        problems += detection_differences(ref, got, threshold=THRESHOLD)
    return problems, confident


@pytest.mark.parametrize("quant", ["u8_pixel", "i8_pixel", "u8_odd", "i8_odd"])
def test_yolo_int8_inputs_give_the_float_twins_detections(corpus, quant):
    reference = Model.load(corpus.path("yolo", "float"))
    model = Model.load(corpus.path("yolo", quant))
    problems, confident = yolo_differences(reference, model, scenes(corpus, 64))
    assert confident >= 20  # the scenes do produce detections to compare
    assert problems == []


@pytest.mark.parametrize("quant", ["u8_odd", "i8_odd"])
def test_raw_pixels_into_a_calibrated_input_lose_the_detections(corpus, quant):
    # What the runtime did before: the comparison above catches it.
    reference = Model.load(corpus.path("yolo", "float"))
    old = raw_pixel_feed(Model.load(corpus.path("yolo", quant)))
    problems, _ = yolo_differences(reference, old, scenes(corpus, 64))
    assert len(problems) >= 20


def test_raw_pixels_stay_exact_where_the_quantization_is_the_pixel_range(corpus):
    model = Model.load(corpus.path("yolo", "i8_pixel"))
    img = scenes(corpus, 64)[0]
    tensor, _ = model.preprocess(img)
    np.testing.assert_array_equal(tensor[0].astype(np.int16), img.astype(np.int16) - 128)


@pytest.mark.parametrize("quant", ["u8_pixel", "u8_odd", "i8_odd"])
def test_classifier_int8_inputs_give_the_float_twins_scores(corpus, quant):
    reference = Model.load(corpus.path("classify", "float"))
    model = Model.load(corpus.path("classify", quant))
    for img in scenes(corpus, 32) + [np.full((32, 32, 3), c, np.uint8) for c in (0, 128, 255)]:
        ref = {c.class_id: c.score for c in reference.predict(img, max_results=4).classes}
        got = {c.class_id: c.score for c in model.predict(img, max_results=4).classes}
        assert max(ref, key=ref.get) == max(got, key=got.get)
        assert max(abs(ref[k] - got.get(k, 0.0)) for k in ref) <= 0.06


@pytest.mark.parametrize("quant", ["u8_pixel", "i8_odd"])
def test_movenet_int8_inputs_give_the_float_twins_keypoints(corpus, quant):
    reference = Model.load(corpus.path("movenet", "float"))
    model = Model.load(corpus.path("movenet", quant))
    for img in scenes(corpus, 64):
        (ref,) = reference.predict(img, score_threshold=0.0).poses
        (got,) = model.predict(img, score_threshold=0.0).poses
        a = np.array([(k.x, k.y, k.score) for k in ref.keypoints])
        b = np.array([(k.x, k.y, k.score) for k in got.keypoints])
        assert np.abs(a - b).max() <= 0.06


def test_posenet_uint8_input_gives_the_float_twins_maps(corpus):
    reference = Model.load(corpus.path("posenet", "float"))
    model = Model.load(corpus.path("posenet", "u8_pixel"))
    for img in scenes(corpus, 33):
        ref = reference.dequantize(reference.invoke(reference.preprocess(img)[0]))
        got = model.dequantize(model.invoke(model.preprocess(img)[0]))
        for r, g in zip(ref, got, strict=True):
            assert np.abs(r - g).max() <= 0.05 * max(1.0, np.abs(r).max())


def test_ssd_postprocess_int8_input_gives_the_float_twins_detections(corpus):
    reference = Model.load(corpus.path("ssd", "float"))
    model = Model.load(corpus.path("ssd", "i8_odd"))
    problems, confident = yolo_differences(reference, model, scenes(corpus, 64))
    assert confident >= 10
    assert problems == []
    old_problems, _ = yolo_differences(reference, raw_pixel_feed(model), scenes(corpus, 64))
    assert old_problems
