"""YOLO txt reader/writer: hand-made datasets (images generated here) and coco128."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgekit.data import (
    COCO80_CATEGORY_IDS,
    COCO80_NAMES,
    Problems,
    read_dataset,
    read_yolo,
    write_yolo,
)
from edgekit.data.yolo_txt import label_path_for
from edgekit.errors import DatasetError


def _image(path: Path, w: int, h: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 90, np.uint8))


def _label(root: Path, stem: str, text: str) -> None:
    p = root / "labels" / f"{stem}.txt"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def _make(
    root: Path,
    labels: dict[str, str | None],
    *,
    yaml: str | None = "names: {0: cat, 1: dog}\ntrain: images\nval: images\n",
) -> Path:
    for stem, text in labels.items():
        _image(root / "images" / f"{stem}.png", 200, 100)
        if text is not None:
            _label(root, stem, text)
    if yaml is not None:
        (root / "data.yaml").write_text(yaml)
    return root


def test_reads_boxes_as_normalized_xyxy(tmp_path):
    root = _make(tmp_path, {"a": "0 0.5 0.5 0.2 0.4\n1 0.25 0.75 0.1 0.1\n", "b": "", "c": None})
    ds = read_yolo(root)
    assert ds.class_names == ("cat", "dog") and ds.source_format == "yolo"
    assert [r.path.name for r in ds] == ["a.png", "b.png", "c.png"]
    a = ds[0]
    assert (a.width, a.height) == (200, 100)
    np.testing.assert_allclose(a.boxes, [[0.4, 0.3, 0.6, 0.7], [0.2, 0.7, 0.3, 0.8]], atol=1e-6)
    assert a.class_ids.tolist() == [0, 1] and a.keypoints is None
    assert ds[1].num_objects == 0 and ds[2].num_objects == 0  # empty file, missing file
    assert ds.class_counts().tolist() == [1, 1]


def test_missing_label_is_a_counted_warning(tmp_path):
    root = _make(tmp_path, {"a": "0 0.5 0.5 0.2 0.4\n", "c": None})
    problems = Problems(strict=False)
    ds = read_yolo(root, problems=problems)
    assert len(ds) == 2 and not problems.errors
    [w] = problems.warnings
    assert w.code == "missing_label" and str(w).startswith("labels/c.txt: label file missing")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "0 0.5 0.5 0.2 0.4\n\n1 0.5 0.5 0.2\n",
            "labels/007.txt line 3: expected 5 numbers 'class cx cy w h', got 4",
        ),
        ("0 1.7 0.5 0.2 0.4\n", "labels/007.txt line 1: cx 1.7 outside [0, 1]"),
        ("0 0.5 0.5 -0.2 0.4\n", "labels/007.txt line 1: w -0.2 outside [0, 1]"),
        ("0 0.5 abc 0.2 0.4\n", "labels/007.txt line 1: 'abc' is not a number"),
        ("1.5 0.5 0.5 0.2 0.4\n", "labels/007.txt line 1: class 1.5 is not an integer"),
        ("-1 0.5 0.5 0.2 0.4\n", "labels/007.txt line 1: class -1 out of range"),
        (
            "0 0.5 0.5 0.2 0.4\n2 0.5 0.5 0.2 0.4\n",
            "labels/007.txt line 2: class 2 out of range (2 classes)",
        ),
    ],
)
def test_malformed_lines_name_file_line_and_problem(tmp_path, text, expected):
    root = _make(tmp_path, {"007": text})
    with pytest.raises(DatasetError) as info:
        read_yolo(root)
    assert expected in str(info.value)


def test_class_out_of_coco80_range_without_names(tmp_path):
    root = _make(tmp_path, {"008": "91 0.5 0.5 0.1 0.1\n"}, yaml=None)
    with pytest.raises(DatasetError, match="class 91 but no class names"):
        read_yolo(root)
    root2 = _make(tmp_path / "b", {"008": "91 0.5 0.5 0.1 0.1\n"}, yaml=None)
    with pytest.raises(
        DatasetError, match=r"labels/008.txt line 1: class 91 out of range \(80 classes\)"
    ):
        read_yolo(root2, names=list(COCO80_NAMES))


def test_non_strict_collects_every_problem(tmp_path):
    root = _make(
        tmp_path,
        {"a": "0 0.5 0.5 0.2\n0 1.5 0.5 0.1 0.1\n0 0.5 0.5 0.1 0.1\n", "b": "7 0.5 0.5 0.1 0.1\n"},
    )
    problems = Problems(strict=False)
    ds = read_yolo(root, problems=problems)
    texts = [str(p) for p in problems.errors]
    assert texts == [
        "labels/a.txt line 1: expected 5 numbers 'class cx cy w h', got 4",
        "labels/a.txt line 2: cx 1.5 outside [0, 1]",
        "labels/b.txt line 1: class 7 out of range (2 classes)",
    ]
    assert ds[0].num_objects == 1 and ds[1].num_objects == 0  # the good line is kept


def test_bare_folder_uses_names_or_coco80(tmp_path):
    root = _make(tmp_path, {"x": "2 0.5 0.5 0.2 0.2\n"}, yaml=None)
    ds = read_dataset(root)  # auto-detects yolo from labels/
    assert ds.class_names == COCO80_NAMES and ds.category_ids == COCO80_CATEGORY_IDS
    ds2 = read_yolo(root, names=["a", "b", "c"])
    assert ds2.class_names == ("a", "b", "c") and ds2.category_ids == (1, 2, 3)


def test_yaml_names_list_split_and_errors(tmp_path):
    root = _make(
        tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n"}, yaml="path: .\nnames: [cat]\ntrain: images\n"
    )
    assert read_yolo(root / "data.yaml", split="train").class_names == ("cat",)
    with pytest.raises(DatasetError, match=r"data\.yaml: val: missing"):
        read_yolo(root, split="val")
    (root / "data.yaml").write_text("names: [cat\ntrain: images\n")
    with pytest.raises(DatasetError, match=r"data.yaml line \d+: YAML syntax error"):
        read_yolo(root)
    (root / "data.yaml").write_text("names: {0: a, 2: b}\ntrain: images\n")
    with pytest.raises(DatasetError, match=r"names: class ids must be 0\.\.1 without gaps"):
        read_yolo(root)
    (root / "data.yaml").write_text("nc: 3\nnames: [a, b]\ntrain: images\n")
    with pytest.raises(DatasetError, match="nc: says 3 classes but names lists 2"):
        read_yolo(root)


def test_keypoints_with_kpt_shape(tmp_path):
    kps = " ".join(["0.5 0.5 2"] * 16 + ["0 0 0"])
    yaml = "names: [person]\nkpt_shape: [17, 3]\ntrain: images\n"
    root = _make(tmp_path, {"p": f"0 0.5 0.5 0.4 0.8 {kps}\n"}, yaml=yaml)
    ds = read_yolo(root)
    assert ds.keypoint_names[5] == "left_shoulder"
    assert ds[0].keypoints.shape == (1, 17, 3)
    np.testing.assert_allclose(ds[0].keypoints[0, 0], [0.5, 0.5, 2])
    np.testing.assert_allclose(ds[0].keypoints[0, 16], [0, 0, 0])
    (root / "labels" / "p.txt").write_text("0 0.5 0.5 0.4 0.8 0.5 0.5 2\n")
    with pytest.raises(DatasetError, match=r"labels/p.txt line 1: expected 56 numbers"):
        read_yolo(root)


def test_write_yolo_round_trip(tmp_path):
    root = _make(tmp_path / "src", {"a": "0 0.5 0.5 0.2 0.4\n1 0.25 0.75 0.1 0.1\n", "b": ""})
    ds = read_yolo(root)
    yaml_path = write_yolo(ds, tmp_path / "out")
    again = read_yolo(yaml_path)
    assert again.class_names == ds.class_names and len(again) == 2
    for r0, r1 in zip(ds, again, strict=True):
        np.testing.assert_allclose(r1.boxes, r0.boxes, atol=1e-5)
        assert r1.class_ids.tolist() == r0.class_ids.tolist()
        assert (r1.width, r1.height) == (r0.width, r0.height)


def test_label_path_for():
    assert label_path_for(Path("/d/images/train/a.jpg")) == Path("/d/labels/train/a.txt")
    assert label_path_for(Path("/d/x/a.jpg")) == Path("/d/x/a.txt")


def test_coco128(shared):
    root = shared("coco128")
    ds = read_dataset(root)
    assert ds.source_format == "yolo" and len(ds) == 100
    assert ds.class_names == COCO80_NAMES
    assert sum(r.num_objects == 0 for r in ds) == 2
    assert ds.num_boxes == sum(
        len([ln for ln in p.read_text().splitlines() if ln.strip()])
        for p in (root / "labels").glob("*.txt")
    )
    first = ds[0]
    assert first.image_id == int(first.path.stem)
    assert (first.width, first.height) == (640, 480)
    for r in ds:
        assert (r.boxes >= 0).all() and (r.boxes <= 1).all()
        assert (r.boxes[:, 2] >= r.boxes[:, 0]).all() and (r.boxes[:, 3] >= r.boxes[:, 1]).all()


def test_image_list_file_with_a_missing_image(tmp_path):
    root = _make(
        tmp_path, {"a": "0 0.5 0.5 0.2 0.4\n"}, yaml="names: [cat, dog]\ntrain: train.txt\n"
    )
    (root / "train.txt").write_text("images/a.png\n./images/gone.png\n")
    with pytest.raises(DatasetError, match=r"images/gone\.png: image file not found"):
        read_yolo(root)
    problems = Problems(strict=False)
    ds = read_yolo(root, problems=problems)
    assert len(ds) == 1 and [p.code for p in problems] == ["missing_label", "missing_image"]
