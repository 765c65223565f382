"""Post-training quantization through edgekit.export, QAT, and the float-vs-int8 error report."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tensorflow_model_optimization")

import keras

from edgekit.compress.layer_error import layer_errors
from edgekit.compress.quantize import export_qat, post_training, qat, quant_error
from edgekit.core.flatbuffer import read_tflite
from edgekit.errors import UsageError
from edgekit.runtime.model import Model
from edgekit.zoo.registry import create_model, get_entry


@pytest.fixture(scope="module")
def model_and_spec():
    keras.utils.set_random_seed(0)
    m = create_model("mobilenet_v2", num_classes=3, input_size=32, width=0.35)
    return m, get_entry("mobilenet_v2").spec(m, ["red", "green", "blue"])


def test_int8_ptq_is_much_smaller_and_close_to_float(model_and_spec, image_folder, tmp_path):
    model, spec = model_and_spec
    f32 = post_training(model, spec, tmp_path / "f.tflite", format="float32").path
    q = post_training(
        model, spec, tmp_path / "q.tflite", calib_dir=image_folder / "red", calib_samples=8
    )
    assert q.spec.input_dtype == "uint8" and q.spec.labels == ("red", "green", "blue")
    # ~2.6x for this 0.4M-parameter model: per-channel scales and zero points are a larger share
    # of a thin model; MobileNetV2 1.0 reaches 3.5x (docs/benchmarks.md, Compression)
    assert f32.stat().st_size / q.path.stat().st_size > 2.4
    images = [np.random.default_rng(i).integers(0, 255, (40, 40, 3), np.uint8) for i in range(4)]
    err = quant_error(f32, q.path, images)
    assert err.images == 4 and len(err.outputs) == 1
    assert err.outputs[0]["max_abs"] < 0.5 and err.outputs[0]["cosine"] > 0.9
    assert 0.0 <= err.top1_agreement <= 1.0
    layers = layer_errors(f32, q.path, images)
    assert len(layers) > 30 and any("Conv1_relu" in r.name for r in layers)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D"} <= {r.op for r in layers}
    for r in layers:
        assert r.rel_rmse >= 0 and -1.0 <= r.cosine <= 1.0 + 1e-6
    # rounding error starts small at the stem and grows along the network
    assert layers[0].rel_rmse < 0.1 and layers[0].cosine > 0.99
    assert max(r.rel_rmse for r in layers) > layers[0].rel_rmse
    assert layer_errors(f32, f32, images[:1])[0].rel_rmse == 0.0  # same model: no error
    with pytest.raises(UsageError):
        layer_errors(f32, q.path, [])
    with pytest.raises(UsageError):
        post_training(model, spec, tmp_path / "x.tflite", format="edgetpu")


def test_qat_exports_a_full_integer_model_with_spec(model_and_spec, image_folder, tmp_path):
    model, spec = model_and_spec
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-1, 1, (16, 32, 32, 3)).astype(np.float32), rng.integers(0, 3, 16)
    qmodel = qat(model, x, y, epochs=1, batch_size=8)
    path = export_qat(
        qmodel, spec, tmp_path / "qat.tflite", calib_dir=image_folder / "blue", calib_samples=4
    )
    graph = read_tflite(path.read_bytes())
    assert graph.inputs[0].dtype == "uint8"
    loaded = Model.load(path, threads=1)
    assert loaded.spec.decoder_params["export_format"] == "int8-qat"
    pred = loaded.predict(np.zeros((40, 40, 3), np.uint8))
    assert len(pred.classes) == 3 and pred.classes[0].label in ("red", "green", "blue")
