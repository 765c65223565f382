"""SSD decoders: TFLite_Detection_PostProcess outputs and raw heads with anchors."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.runtime.decoders.ssd import decode_boxes, decode_postprocessed, decode_raw
from edgekit.runtime.preprocess import dequantize

LABELS = ("person", "bicycle", "car")


def test_postprocessed_basic():
    boxes = np.array(
        [[[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0.3, 0.3, 0.4, 0.4], [0, 0, 0, 0]]]
    )
    classes = np.array([[2.0, 0.0, 1.0, 0.0]])
    scores = np.array([[0.9, 0.4, 0.7, 0.0]])
    dets = decode_postprocessed(
        boxes, classes, scores, np.array([3.0]), score_threshold=0.5, labels=LABELS
    )
    assert [d.class_id for d in dets] == [2, 1]
    assert [d.label for d in dets] == ["car", "bicycle"]
    assert dets[0].box == pytest.approx((0.2, 0.1, 0.6, 0.5))  # yxyx -> xyxy
    assert isinstance(dets[0].class_id, int) and isinstance(dets[0].score, float)


def test_postprocessed_count_limits_rows_and_label_offset():
    boxes = np.tile([0.1, 0.1, 0.5, 0.5], (4, 1))
    classes = np.array([0.0, 1.0, 2.0, 0.0])
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    dets = decode_postprocessed(
        boxes, classes, scores, 2.0, score_threshold=0.1, labels=("???", *LABELS), label_offset=1
    )
    assert [d.label for d in dets] == ["person", "bicycle"]
    assert len(decode_postprocessed(boxes, classes, scores, 99.0, score_threshold=0.1)) == 4
    assert decode_postprocessed(boxes, classes, scores, -1.0, score_threshold=0.1) == []
    assert (
        len(
            decode_postprocessed(
                boxes, classes, scores, None, score_threshold=0.1, max_detections=3
            )
        )
        == 3
    )
    assert (
        decode_postprocessed(
            boxes, classes, scores, 2.0, score_threshold=0.1, labels=LABELS, label_offset=5
        )[0].label
        == ""
    )


def test_postprocessed_clips_and_sorts():
    boxes = np.array([[-0.2, -0.1, 1.3, 0.5], [0.1, 0.1, 0.2, 0.2]])
    dets = decode_postprocessed(boxes, [0.0, 1.0], [0.6, 0.8], 2, score_threshold=0.5)
    assert [d.score for d in dets] == pytest.approx([0.8, 0.6])
    assert dets[1].box == pytest.approx((0.0, 0.0, 0.5, 1.0))


def test_postprocessed_nan_and_outside_boxes_are_dropped():
    boxes = np.array([[0.1, 0.1, 0.5, 0.5], [np.nan, 0.1, 0.5, 0.5], [1.2, 1.2, 1.5, 1.5]])
    dets = decode_postprocessed(boxes, [0.0, 0.0, 0.0], [np.nan, 0.9, 0.9], 3, score_threshold=0.5)
    assert dets == []


def test_postprocessed_quantized_uint8():
    scale, zp = 1 / 255, 0
    q_boxes = np.array([[[26, 51, 128, 153]]], dtype=np.uint8)
    q_scores = np.array([[200]], dtype=np.uint8)
    boxes = dequantize(q_boxes, scale, zp)
    scores = dequantize(q_scores, 1 / 256, 0)
    assert boxes.dtype == np.float32
    dets = decode_postprocessed(
        boxes, np.array([[0.0]]), scores, np.array([1.0]), score_threshold=0.5
    )
    assert dets[0].box == pytest.approx((51 / 255, 26 / 255, 153 / 255, 128 / 255), abs=1e-6)
    assert dets[0].score == pytest.approx(200 / 256)


def test_postprocessed_shape_errors():
    with pytest.raises(ValueError, match="boxes"):
        decode_postprocessed(np.zeros((3, 3)), np.zeros(3), np.zeros(3), 3)
    with pytest.raises(ValueError, match="disagree"):
        decode_postprocessed(np.zeros((3, 4)), np.zeros(2), np.zeros(3), 3)
    with pytest.raises(ValueError, match="count"):
        decode_postprocessed(np.zeros((3, 4)), np.zeros(3), np.zeros(3), np.zeros(2))


# --- raw heads --------------------------------------------------------------------------


def encode(boxes_xyxy, anchors, scales=(10.0, 10.0, 5.0, 5.0)):
    """The inverse of the SSD box coder (what training targets are)."""
    x0, y0, x1, y1 = boxes_xyxy.T
    cy, cx, h, w = (y0 + y1) / 2, (x0 + x1) / 2, y1 - y0, x1 - x0
    acy, acx, ah, aw = anchors.T
    return np.stack(
        [
            (cy - acy) / ah * scales[0],
            (cx - acx) / aw * scales[1],
            np.log(h / ah) * scales[2],
            np.log(w / aw) * scales[3],
        ],
        axis=1,
    )


def grid_anchors(n=4, size=0.3):
    c = (np.arange(n) + 0.5) / n
    cy, cx = np.meshgrid(c, c, indexing="ij")
    return np.stack([cy.ravel(), cx.ravel(), np.full(n * n, size), np.full(n * n, size)], axis=1)


def test_decode_boxes_inverts_encode():
    anchors = grid_anchors()
    rng = np.random.default_rng(0)
    xy = rng.uniform(0.0, 0.6, (16, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0.05, 0.4, (16, 2))], axis=1)
    np.testing.assert_allclose(decode_boxes(encode(boxes, anchors), anchors), boxes, atol=1e-12)
    np.testing.assert_allclose(
        decode_boxes(encode(boxes, anchors, (1, 2, 3, 4)), anchors, scales=(1, 2, 3, 4)),
        boxes,
        atol=1e-12,
    )
    with pytest.raises(ValueError, match="anchors"):
        decode_boxes(np.zeros((3, 4)), np.zeros((4, 4)))


def test_decode_boxes_huge_encodings_stay_finite():
    out = decode_boxes(np.array([[0.0, 0.0, 1e6, 1e6]]), np.array([[0.5, 0.5, 0.1, 0.1]]))
    assert np.isfinite(out).all()


def _raw_case():
    anchors = grid_anchors()
    target = np.array([[0.1, 0.1, 0.4, 0.4], [0.6, 0.5, 0.9, 0.95]])
    enc = np.zeros((16, 4))
    scores = np.zeros((16, 4))  # background + 3 classes
    enc[0] = encode(target[:1], anchors[:1])[0]
    enc[1] = encode(target[:1] + 0.01, anchors[1:2])[0]  # near duplicate, lower score
    enc[15] = encode(target[1:], anchors[15:])[0]
    scores[0, 1] = 0.9
    scores[1, 1] = 0.8
    scores[1, 3] = 0.6  # same box, other class: survives class-aware NMS
    scores[15, 2] = 0.7
    return enc, scores, anchors, target


def test_decode_raw_probabilities_with_background():
    enc, scores, anchors, target = _raw_case()
    dets = decode_raw(enc, scores, anchors, score_threshold=0.5, iou_threshold=0.5, labels=LABELS)
    assert [(d.class_id, d.label) for d in dets] == [(0, "person"), (1, "bicycle"), (2, "car")]
    assert dets[0].box == pytest.approx(tuple(target[0]), abs=1e-9)
    assert dets[1].box == pytest.approx(tuple(target[1]), abs=1e-9)
    agnostic = decode_raw(enc, scores, anchors, score_threshold=0.5, class_agnostic=True)
    assert [d.class_id for d in agnostic] == [0, 1]
    assert len(decode_raw(enc, scores, anchors, score_threshold=0.5, max_detections=1)) == 1
    assert decode_raw(enc, scores, anchors, score_threshold=0.95) == []


def test_decode_raw_logits_sigmoid_and_softmax_and_no_background():
    enc, scores, anchors, _ = _raw_case()
    logits = np.log(np.clip(scores, 1e-9, None) / np.clip(1 - scores, 1e-9, None))
    dets = decode_raw(enc, logits, anchors, score_threshold=0.5, scores_are_logits=True)
    assert [d.score for d in dets] == pytest.approx([0.9, 0.7, 0.6])
    # softmax over [background, classes]: a strong logit wins its row.
    soft = np.full((16, 4), -10.0)
    soft[:, 0] = 5.0
    soft[0, 1] = 10.0
    dets = decode_raw(
        enc, soft, anchors, score_threshold=0.5, scores_are_logits=True, activation="softmax"
    )
    assert [d.class_id for d in dets] == [0]
    assert dets[0].score == pytest.approx(np.exp(10) / (np.exp(10) + np.exp(5) + 2 * np.exp(-10)))
    dets = decode_raw(enc, scores[:, 1:], anchors, score_threshold=0.5, has_background=False)
    assert [d.class_id for d in dets] == [0, 1, 2]
    with pytest.raises(ValueError, match="activation"):
        decode_raw(enc, scores, anchors, scores_are_logits=True, activation="relu")


def test_decode_raw_quantized_int8_scores():
    enc, scores, anchors, _ = _raw_case()
    scale, zp = 1 / 256, -128
    q = np.clip(np.round(scores / scale) + zp, -128, 127).astype(np.int8)
    q_enc = np.clip(np.round(enc / 0.05), -128, 127).astype(np.int8)
    dets = decode_raw(
        dequantize(q_enc, 0.05, 0), dequantize(q, scale, zp), anchors, score_threshold=0.5
    )
    assert [d.class_id for d in dets] == [0, 1, 2]
    assert dets[0].score == pytest.approx(0.9, abs=1 / 256)


def test_decode_raw_shape_errors():
    anchors = grid_anchors()
    with pytest.raises(ValueError, match="class_scores"):
        decode_raw(np.zeros((16, 4)), np.zeros((15, 3)), anchors)
    with pytest.raises(ValueError, match="background"):
        decode_raw(np.zeros((16, 4)), np.zeros((16, 1)), anchors)
    with pytest.raises(ValueError, match="box_encodings"):
        decode_raw(np.zeros((16, 3)), np.zeros((16, 3)), anchors)


@pytest.mark.shared
def test_real_ssd_model_on_grace_hopper(shared):
    cv2 = pytest.importorskip("cv2")
    interpreter_mod = pytest.importorskip("ai_edge_litert.interpreter")
    model = shared("models", "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite")
    labels = shared("models", "coco_labels.txt").read_text().splitlines()
    image = cv2.cvtColor(cv2.imread(str(shared("images", "grace_hopper.bmp"))), cv2.COLOR_BGR2RGB)
    it = interpreter_mod.Interpreter(model_path=str(model))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], cv2.resize(image, (300, 300))[None])
    it.invoke()
    outs = [
        dequantize(it.get_tensor(d["index"]), *d["quantization"]) for d in it.get_output_details()
    ]
    dets = decode_postprocessed(*outs, score_threshold=0.4, labels=labels)
    assert dets[0].label == "person" and dets[0].score > 0.6
    person = dets[0].box
    assert person[2] - person[0] > 0.8 and person[3] - person[1] > 0.8  # a portrait
    ties = [d for d in dets if d.label == "tie"]
    assert ties and person[0] < ties[0].box[0] < ties[0].box[2] < person[2]
