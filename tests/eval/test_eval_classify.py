"""Top-k accuracy on hand-made arrays, the image-folder dataset, and a real classifier."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.core.types import Classification
from edgekit.data.images import is_image_folder, read_image_folder
from edgekit.errors import DatasetError
from edgekit.eval.classify import evaluate_classes, topk_accuracy


def test_topk_known_answer():
    ranked = np.array([[3, 1, 2, 0, 4], [0, 1, 2, 3, 4], [9, 8, 7, 6, 5], [1, 2, -1, -1, -1]])
    truth = np.array([3, 2, 0, 2])
    acc = topk_accuracy(ranked, truth, ks=(1, 2, 5))
    assert acc == {"top1": 0.25, "top2": 0.5, "top5": 0.75}
    assert np.isnan(topk_accuracy(np.zeros((0, 5)), np.zeros(0))["top1"])
    with pytest.raises(ValueError):
        topk_accuracy(ranked, truth[:2])


def _write_folder(root):
    import cv2

    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(root / cls / f"{i}.png"), np.full((8, 12, 3), 40 * i, np.uint8))
    return root


def test_image_folder_dataset_and_evaluation(tmp_path):
    root = _write_folder(tmp_path / "pets")
    assert is_image_folder(root) and not is_image_folder(tmp_path / "missing")
    ds = read_image_folder(root)
    assert ds.class_names == ("cat", "dog") and len(ds) == 4 and ds.images[0].width == 12
    assert ds.source_format == "folder"
    preds = [
        [Classification(0, 0.9, "cat"), Classification(1, 0.1, "dog")],
        [Classification(1, 0.6, "dog"), Classification(0, 0.4, "cat")],
        [Classification(1, 0.9, "dog")],
        [Classification(7, 0.9, "hamster")],
    ]
    by_name = {"cat": 0, "dog": 1}
    m = evaluate_classes(ds, preds, lambda c: by_name.get(c.label))
    assert m.metrics == {"top1": 0.5, "top5": 0.75}
    assert m.per_class == {"cat": {"top1": 0.5, "images": 2}, "dog": {"top1": 0.5, "images": 2}}


def test_empty_folder_is_refused(tmp_path):
    with pytest.raises(DatasetError):
        read_image_folder(tmp_path)


def test_real_classifier_on_a_one_image_folder(shared, tmp_path):
    import shutil

    from edgekit.eval import EvalConfig, evaluate_model

    img = shared("images", "grace_hopper.bmp")
    (tmp_path / "military uniform").mkdir()
    shutil.copy(img, tmp_path / "military uniform" / "grace_hopper.bmp")
    model = shared("models", "mobilenet_v1_0.25_128_quant.tflite")
    labels = shared("models", "imagenet_labels.txt").read_text().splitlines()
    cfg = EvalConfig(model=model, data=tmp_path, split="all", labels=tuple(labels))
    result = evaluate_model(cfg)
    assert result.task == "classify" and result.images == 1
    assert result.metrics["top5"] == 1.0
