"""Classifier decoder: top-k, label offsets, optional softmax."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.runtime.decoders.classify import decode, softmax
from edgekit.runtime.preprocess import dequantize


def test_top_k_sorted_with_ties_by_index():
    scores = np.array([0.1, 0.5, 0.2, 0.5, 0.0])
    out = decode(scores, top_k=3, labels=["a", "b", "c", "d", "e"])
    assert [(c.class_id, c.label) for c in out] == [(1, "b"), (3, "d"), (2, "c")]
    assert isinstance(out[0].class_id, int) and isinstance(out[0].score, float)
    assert [c.class_id for c in decode(scores[None], top_k=10, score_threshold=0.15)] == [1, 3, 2]
    assert decode(scores, top_k=0) == []


def test_label_offset_background_models():
    scores = np.zeros(1001)
    scores[653] = 0.9
    labels_1000 = [f"class{i}" for i in range(1000)]
    (top,) = decode(scores, top_k=1, labels=labels_1000, label_offset=-1)
    assert top.class_id == 653 and top.label == "class652"
    (top,) = decode(scores, top_k=1, labels=["background", *labels_1000])
    assert top.label == "class652"
    (top,) = decode(scores, top_k=1, labels=["x"])
    assert top.label == ""


def test_softmax_only_when_asked():
    logits = np.array([2.0, 1.0, 0.0])
    assert decode(logits, top_k=1)[0].score == pytest.approx(2.0)
    probs = decode(logits, top_k=3, apply_softmax=True)
    assert sum(c.score for c in probs) == pytest.approx(1.0)
    assert probs[0].score == pytest.approx(np.exp(2) / np.exp([2, 1, 0]).sum())
    np.testing.assert_allclose(softmax([1000.0, 1000.0, np.nan]), [0.5, 0.5, 0.0])


def test_non_finite_scores_skipped_and_shape_errors():
    out = decode(np.array([np.nan, 0.3, np.inf, -np.inf]), top_k=5, score_threshold=-1.0)
    assert [c.class_id for c in out] == [1]
    with pytest.raises(ValueError, match="classifier"):
        decode(np.zeros((2, 3)))


def test_quantized_uint8_scores():
    q = np.zeros((1, 1001), np.uint8)
    q[0, 653] = 225
    q[0, 10] = 5
    out = decode(dequantize(q, 1 / 256, 0), top_k=2)
    assert [c.class_id for c in out] == [653, 10]
    assert out[0].score == pytest.approx(225 / 256)


@pytest.mark.shared
@pytest.mark.parametrize(
    ("model", "size"),
    [("mobilenet_v2_1.0_224_quant.tflite", 224), ("mobilenet_v1_0.25_128_quant.tflite", 128)],
)
def test_real_classifiers_on_grace_hopper(shared, model, size):
    cv2 = pytest.importorskip("cv2")
    interpreter_mod = pytest.importorskip("ai_edge_litert.interpreter")
    labels = shared("models", "imagenet_labels.txt").read_text().splitlines()
    image = cv2.cvtColor(cv2.imread(str(shared("images", "grace_hopper.bmp"))), cv2.COLOR_BGR2RGB)
    it = interpreter_mod.Interpreter(model_path=str(shared("models", model)))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], cv2.resize(image, (size, size))[None])
    it.invoke()
    d = it.get_output_details()[0]
    out = decode(dequantize(it.get_tensor(d["index"]), *d["quantization"]), top_k=5, labels=labels)
    names = [c.label for c in out]
    assert len(out) == 5 and labels[0] == "background"
    assert "military uniform" in names or "suit, suit of clothes" in names
    if size == 224:
        assert out[0].label == "military uniform" and out[0].score > 0.7
