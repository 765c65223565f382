"""COCO JSON reader and writer: hand-made annotation files, malformed cases, round trips."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgekit.core.types import COCO_KEYPOINT_NAMES
from edgekit.data import Problems, read_coco, read_dataset, to_coco_json, write_coco_json
from edgekit.errors import DatasetError


def _image(path: Path, w: int, h: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 60, np.uint8))


BASE = {
    "images": [
        {"id": 7, "file_name": "a.jpg", "width": 200, "height": 100},
        {"id": 3, "file_name": "b.jpg", "width": 100, "height": 100},
        {"id": 9, "file_name": "c.jpg", "width": 50, "height": 40},
    ],
    "annotations": [
        {"id": 1, "image_id": 7, "category_id": 18, "bbox": [20, 10, 100, 50], "iscrowd": 0},
        {"id": 2, "image_id": 7, "category_id": 1, "bbox": [0, 0, 10, 10], "iscrowd": 1},
        {"id": 3, "image_id": 3, "category_id": 18, "bbox": [50, 50, 50, 50]},
    ],
    "categories": [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}],
}


def _write(tmp_path: Path, data: dict, name: str = "instances.json") -> Path:
    for im in BASE["images"]:
        _image(tmp_path / "images" / im["file_name"], im["width"], im["height"])
    p = tmp_path / "annotations" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data, indent=1))
    return p


def test_reads_boxes_classes_and_keeps_empty_images(tmp_path):
    ds = read_coco(_write(tmp_path, BASE))
    assert ds.class_names == ("person", "dog") and ds.category_ids == (1, 18)
    assert [r.image_id for r in ds] == [7, 3, 9]
    a, b, c = ds
    assert a.path == tmp_path / "images" / "a.jpg"
    np.testing.assert_allclose(a.boxes, [[0.1, 0.1, 0.6, 0.6], [0.0, 0.0, 0.05, 0.1]], atol=1e-6)
    assert a.class_ids.tolist() == [1, 0] and a.iscrowd.tolist() == [False, True]
    np.testing.assert_allclose(b.boxes, [[0.5, 0.5, 1.0, 1.0]])
    assert c.num_objects == 0  # image without annotations kept


def test_auto_detects_a_folder_with_annotations(tmp_path):
    _write(tmp_path, BASE)
    ds = read_dataset(tmp_path)
    assert ds.source_format == "coco" and len(ds) == 3


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["annotations"][1].update(bbox=[1, 2, 3]),
            "instances.json: annotations[1].bbox: expected 4 numbers",
        ),
        (
            lambda d: d["annotations"][0].update(bbox=[1, 2, "x", 4]),
            "instances.json: annotations[0].bbox: expected 4 numbers",
        ),
        (
            lambda d: d["annotations"][2].update(bbox=[1, 2, -3, 4]),
            "annotations[2].bbox: negative width or height",
        ),
        (
            lambda d: d["annotations"][2].update(category_id=5),
            "instances.json: annotations[2].category_id: no category with id 5",
        ),
        (
            lambda d: d["annotations"][0].update(image_id=99),
            "instances.json: annotations[0].image_id: no image with id 99",
        ),
        (
            lambda d: d["annotations"][0].update(iscrowd=2),
            "annotations[0].iscrowd: expected 0 or 1",
        ),
        (
            lambda d: d["images"][1].update(width="100"),
            "instances.json: images[1].width: expected an integer",
        ),
        (
            lambda d: d["images"][1].update(id=7),
            "instances.json: images[1].id: duplicate image id 7",
        ),
        (
            lambda d: d["images"][2].update(file_name="nope.jpg"),
            "images/nope.jpg: image file not found (instances.json: images[2].file_name)",
        ),
        (lambda d: d.pop("categories"), "instances.json: categories: missing or not a list"),
    ],
)
def test_malformed_fields_are_named(tmp_path, mutate, expected):
    data = copy.deepcopy(BASE)
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(DatasetError) as info:
        read_coco(path)
    assert expected in str(info.value)


def test_json_syntax_error_has_line(tmp_path):
    path = _write(tmp_path, BASE)
    text = path.read_text().splitlines()
    text[4] = text[4] + ","  # trailing comma inside an object
    path.write_text("\n".join(text))
    with pytest.raises(DatasetError, match=r"instances.json line \d+: JSON syntax error"):
        read_coco(path)


def test_non_strict_collects_all(tmp_path):
    data = copy.deepcopy(BASE)
    data["annotations"][0]["bbox"] = [1, 2]
    data["annotations"][2]["category_id"] = 4
    problems = Problems(strict=False)
    ds = read_coco(_write(tmp_path, data), problems=problems)
    assert [p.where for p in problems.errors] == [
        "annotations[0].bbox",
        "annotations[2].category_id",
    ]
    assert ds[0].num_objects == 1  # the crowd annotation survives


def test_keypoints(tmp_path):
    data = copy.deepcopy(BASE)
    data["categories"] = [{"id": 1, "name": "person", "keypoints": list(COCO_KEYPOINT_NAMES)}]
    kps = [0.0] * 51
    kps[0:3] = [100, 50, 2]  # nose
    kps[15:18] = [40, 20, 1]  # left shoulder
    data["annotations"] = [
        {"id": 1, "image_id": 7, "category_id": 1, "bbox": [10, 10, 150, 80], "keypoints": kps}
    ]
    ds = read_coco(_write(tmp_path, data, "person_keypoints.json"))
    assert ds.keypoint_names == COCO_KEYPOINT_NAMES
    k = ds[0].keypoints
    assert k.shape == (1, 17, 3) and ds[1].keypoints.shape == (0, 17, 3)
    np.testing.assert_allclose(k[0, 0], [0.5, 0.5, 2])
    np.testing.assert_allclose(k[0, 5], [0.2, 0.2, 1])
    data["annotations"][0]["keypoints"] = kps[:50]
    with pytest.raises(DatasetError, match=r"annotations\[0\].keypoints: expected 51 numbers"):
        read_coco(_write(tmp_path, data, "person_keypoints.json"))


def test_to_coco_json_round_trip(tmp_path):
    ds = read_coco(_write(tmp_path, BASE))
    gt = to_coco_json(ds)
    assert {c["id"] for c in gt["categories"]} == {1, 18}
    ann = next(a for a in gt["annotations"] if a["image_id"] == 7 and a["category_id"] == 18)
    assert ann["bbox"] == pytest.approx([20, 10, 100, 50], abs=1e-3)
    assert ann["area"] == pytest.approx(5000, rel=1e-4)
    out = write_coco_json(ds, tmp_path / "images" / "gt.json")
    again = read_coco(out)
    assert again.class_names == ds.class_names and again.category_ids == ds.category_ids
    for r0, r1 in zip(ds, again, strict=True):
        assert r0.image_id == r1.image_id and r0.path == r1.path
        np.testing.assert_allclose(r1.boxes, r0.boxes, atol=1e-5)
        assert r1.iscrowd.tolist() == r0.iscrowd.tolist()


def test_coco128_to_coco_json_uses_coco_category_ids(shared, tmp_path):
    ds = read_dataset(shared("coco128"))
    gt = to_coco_json(ds)
    assert len(gt["images"]) == 100 and len(gt["annotations"]) == ds.num_boxes
    assert gt["categories"][-1] == {"id": 90, "name": "toothbrush", "supercategory": ""}
    out = tmp_path / "gt.json"
    out.write_text(json.dumps(gt))
    again = read_coco(out, images_dir=shared("coco128"))
    assert again.num_boxes == ds.num_boxes and [r.image_id for r in again] == [
        r.image_id for r in ds
    ]
