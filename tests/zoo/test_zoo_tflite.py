"""The zoo's graphs, decode tails included, convert to TFLite with builtin ops only and run the
same as in Keras (slow: a TFLite conversion per model)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
litert = pytest.importorskip("ai_edge_litert.interpreter")

import tensorflow as tf  # noqa: E402

from edgekit.core.flatbuffer import read_tflite  # noqa: E402
from edgekit.zoo.registry import create_model  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["movenet_mobilenet_v2", "yolo_tiny", "ssdlite_mobilenet_v3_large_minimalistic"]
)
def test_converts_with_builtin_ops_and_matches_keras(name):
    kwargs = {} if name.startswith("movenet") else {"num_classes": 5}  # outputs differ in shape
    model = create_model(name, input_size=64, width=0.35, batch_size=1, **kwargs)
    data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    graph = read_tflite(data)
    ops = set(graph.op_histogram())
    assert not [op for op in ops if op == "CUSTOM" or op.startswith("Flex")], ops
    assert "TILE" not in ops  # upsampling is RESIZE_NEAREST_NEIGHBOR
    assert "SHAPE" not in ops  # batch_size=1: static shapes
    interp = litert.Interpreter(model_content=data)
    interp.allocate_tensors()
    x = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype("float32")
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    got = sorted(
        (interp.get_tensor(d["index"]) for d in interp.get_output_details()), key=lambda a: a.shape
    )
    want = model(x, training=False)
    want = sorted(
        (np.asarray(w) for w in (want if isinstance(want, (list, tuple)) else [want])),
        key=lambda a: a.shape,
    )
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-4)
