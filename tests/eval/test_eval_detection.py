"""Detection metrics on hand-made ground truth with known answers, and the class mapping."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.core.types import Detection
from edgekit.data import COCO80_NAMES, Dataset, ImageRecord
from edgekit.errors import UsageError
from edgekit.eval.detection import COCO90_TO_80, ClassMap, coco_detections, evaluate_detections

A, B = 0, 1
BOX1 = (0.1, 0.1, 0.3, 0.3)
BOX2 = (0.5, 0.5, 0.9, 0.8)


def _dataset() -> Dataset:
    """Two 100x200 images: one "a" box in the first, one "a" and one "b" in the second."""
    recs = (
        ImageRecord("one.jpg", 200, 100, np.array([BOX1]), np.array([A]), image_id=1),
        ImageRecord("two.jpg", 200, 100, np.array([BOX1, BOX2]), np.array([A, B]), image_id=2),
    )
    return Dataset(recs, ("a", "b"))


def _det(box, cls, score=0.9, label=None):
    return Detection(box, cls, score, ("a", "b")[cls] if label is None else label)


IDENTITY = ClassMap.build(("a", "b"), ("a", "b"), "none")


def test_perfect_detections_give_ap_one():
    ds = _dataset()
    preds = [[_det(BOX1, A)], [_det(BOX1, A, 0.8), _det(BOX2, B, 0.7)]]
    m = evaluate_detections(ds, preds, IDENTITY)
    assert m.metrics["mAP"] == pytest.approx(1.0)
    assert m.metrics["AP50"] == pytest.approx(1.0)
    assert m.metrics["AP75"] == pytest.approx(1.0)
    assert m.per_class["a"] == {"AP": pytest.approx(1.0), "AP50": pytest.approx(1.0), "gt": 2}
    assert m.per_class["b"]["AP"] == pytest.approx(1.0)
    np.testing.assert_allclose(m.pr_curves["all"], 1.0)
    assert m.num_detections == 3


def test_one_of_two_boxes_missed():
    ds = Dataset(
        (ImageRecord("x.jpg", 100, 100, np.array([BOX1, BOX2]), np.array([A, A]), image_id=1),),
        ("a", "b"),
    )
    m = evaluate_detections(ds, [[_det(BOX1, A)]], IDENTITY)
    assert m.metrics["AR100"] == pytest.approx(0.5)
    # precision 1 up to recall 0.5, then 0: 51 of the 101 recall points -> what COCOeval gives
    assert m.metrics["mAP"] == pytest.approx(51 / 101, abs=1e-6)
    assert m.per_class["a"]["AP50"] == pytest.approx(51 / 101, abs=1e-6)
    assert "b" not in m.per_class  # no ground truth: no AP, not in the mean


def test_wrong_class_scores_zero():
    ds = _dataset()
    preds = [[_det(BOX1, B)], [_det(BOX1, B), _det(BOX2, A)]]
    m = evaluate_detections(ds, preds, IDENTITY)
    assert m.metrics["mAP"] == pytest.approx(0.0)
    assert m.per_class["a"]["AP"] == pytest.approx(0.0)
    assert m.per_class["b"]["AP50"] == pytest.approx(0.0)


def test_no_detections_scores_zero():
    m = evaluate_detections(_dataset(), [[], []], IDENTITY)
    assert m.metrics["mAP"] == 0.0 and m.per_class["a"]["AP"] == 0.0 and m.num_detections == 0


def test_detections_are_written_in_pixels_with_dataset_category_ids():
    ds = Dataset(
        (ImageRecord("x.jpg", 200, 100, np.array([BOX1]), np.array([0]), image_id=7),),
        COCO80_NAMES,
    )
    cmap = ClassMap.build(("person", "bicycle", "car"), COCO80_NAMES)
    res = coco_detections(
        ds,
        [
            [
                Detection((0.1, 0.2, 0.5, 0.6), 2, 0.5, "car"),
                Detection(BOX1, 0, 0.4, "zebra crossing"),
            ]
        ],
        cmap,
    )
    assert res == [
        {"image_id": 7, "category_id": 3, "bbox": pytest.approx([20, 20, 80, 40]), "score": 0.5}
    ]


def test_coco90to80_table():
    assert len(COCO90_TO_80) == 80
    assert COCO90_TO_80[0] == 0  # person
    assert COCO90_TO_80[89] == 79  # toothbrush
    assert COCO90_TO_80[12] == COCO80_NAMES.index("stop sign")  # category 13
    assert 11 not in COCO90_TO_80 and 25 not in COCO90_TO_80  # unused category ids 12, 26
    assert sorted(COCO90_TO_80.values()) == list(range(80))


def test_class_map_by_name_with_aliases_and_drops():
    cmap = ClassMap.build(
        ("background", "aeroplane", "Motorbike", "tvmonitor", "zebra crossing"), COCO80_NAMES
    )
    assert cmap.mode == "name"
    assert cmap(Detection(BOX1, 1, 0.5, "aeroplane")) == COCO80_NAMES.index("airplane")
    assert cmap(Detection(BOX1, 2, 0.5, "Motorbike")) == COCO80_NAMES.index("motorcycle")
    assert cmap(Detection(BOX1, 3, 0.5, "tvmonitor")) == COCO80_NAMES.index("tv")
    assert cmap(Detection(BOX1, 4, 0.5, "zebra crossing")) is None


def test_class_map_modes():
    coco = ClassMap.build((), COCO80_NAMES, "coco90to80")
    assert coco(Detection(BOX1, 50, 0.5, "")) == COCO80_NAMES.index("bowl")
    assert coco(Detection(BOX1, 11, 0.5, "")) is None
    assert ClassMap.build((), ("a", "b"), "auto").mode == "none"
    with pytest.raises(UsageError):
        ClassMap.build((), ("a", "b"), "coco90to80")
    with pytest.raises(UsageError):
        ClassMap.build(("x", "y", "z"), ("a", "b"), "auto")
    with pytest.raises(UsageError):
        ClassMap.build(("a",), ("a",), "bogus")


def test_ssd_labels_map_by_name_as_the_90_to_80_table(shared):
    """The third-party SSD: every named output class maps to the table's dataset class."""
    from edgekit.runtime.model import Model

    model = Model.load(shared("models", "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"))
    cmap = ClassMap.build(model.labels, COCO80_NAMES)
    named = 0
    for class_id, label in enumerate(model.labels):
        det = Detection(BOX1, class_id, 0.5, label)
        if label == "???":
            assert cmap(det) is None
            continue
        assert cmap(det) == COCO90_TO_80[class_id], label
        named += 1
    assert named == 80
