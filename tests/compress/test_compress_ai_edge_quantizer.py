"""ai-edge-quantizer recipes on an existing float .tflite: spec kept, runs, agrees with float."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_quantizer")

from edgekit.cli.main import main
from edgekit.compress.ai_edge_quantizer import quantize_tflite
from edgekit.errors import UsageError
from edgekit.runtime.model import Model


@pytest.fixture(scope="module")
def float_model(tmp_path_factory):
    import keras

    from edgekit.compress.quantize import post_training
    from edgekit.zoo.registry import create_model, get_entry

    keras.utils.set_random_seed(0)
    m = create_model("mobilenet_v2", num_classes=3, input_size=32, width=0.35)
    spec = get_entry("mobilenet_v2").spec(m, ["red", "green", "blue"])
    out = tmp_path_factory.mktemp("aeq") / "f.tflite"
    return post_training(m, spec, out, format="float32").path


def _images(n=6):
    return [np.random.default_rng(i).integers(0, 255, (40, 40, 3), np.uint8) for i in range(n)]


@pytest.mark.parametrize(
    ("recipe", "dtype"), [("static_wi8_ai8", "int8"), ("dynamic_wi8_afp32", "float32")]
)
def test_recipes_keep_the_spec_and_shrink_the_model(float_model, tmp_path, recipe, dtype):
    out = quantize_tflite(float_model, tmp_path / "q.tflite", recipe, _images())
    q, f = Model.load(out, threads=1), Model.load(float_model, threads=1)
    assert q.labels == ("red", "green", "blue") and q.task == "classify"
    assert q.spec.input_dtype == dtype
    assert q.spec.decoder_params["export_format"] == f"aeq-{recipe}"
    assert out.stat().st_size * 2 < float_model.stat().st_size
    for img in _images(3):
        pf = np.array([c.score for c in sorted(f.predict(img).classes, key=lambda c: c.label)])
        pq = np.array([c.score for c in sorted(q.predict(img).classes, key=lambda c: c.label)])
        assert np.abs(pf - pq).max() < 0.1


def test_bad_inputs_are_usage_errors(float_model, tmp_path):
    with pytest.raises(UsageError, match="unknown"):
        quantize_tflite(float_model, tmp_path / "x.tflite", "static_wi3")
    with pytest.raises(UsageError, match="calibration images"):
        quantize_tflite(float_model, tmp_path / "x.tflite", "static_wi8_ai8", ())
    q = quantize_tflite(float_model, tmp_path / "q.tflite", "static_wi8_ai8", _images(2))
    with pytest.raises(UsageError, match="float model"):  # int8 input: already quantized
        quantize_tflite(q, tmp_path / "x.tflite", "dynamic_wi8_afp32")


def test_cli(float_model, tmp_path, capsys):
    import cv2

    (tmp_path / "calib").mkdir()
    for i, img in enumerate(_images(4)):
        cv2.imwrite(str(tmp_path / "calib" / f"{i}.png"), img)
    out = tmp_path / "cli.tflite"
    assert (
        main(["quantize", str(float_model), "--calib", str(tmp_path / "calib"), "--out", str(out)])
        == 0
    )
    assert "static_wi8_ai8" in capsys.readouterr().out and out.is_file()
    assert main(["quantize", str(float_model)]) == 2  # a static recipe without --calib
    assert "calibration images" in capsys.readouterr().err
