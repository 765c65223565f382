"""Pascal VOC reader: hand-made XML files and images, malformed cases."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgekit.data import VOC_NAMES, Problems, read_dataset, read_voc
from edgekit.errors import DatasetError


def _xml(stem: str, w: int, h: int, objects: list[str]) -> str:
    objs = "".join(f"<object>{o}</object>" for o in objects)
    return (
        f"<annotation>\n<filename>{stem}.jpg</filename>\n"
        f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size>\n{objs}\n</annotation>\n"
    )


def _obj(name: str, box: tuple, difficult: int = 0) -> str:
    tags = "".join(
        f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True)
    )
    return f"<name>{name}</name><difficult>{difficult}</difficult><bndbox>{tags}</bndbox>"


def _make(root: Path, files: dict[str, str], sizes: dict[str, tuple[int, int]]) -> Path:
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    for stem, text in files.items():
        (root / "Annotations" / f"{stem}.xml").write_text(text)
        w, h = sizes.get(stem, (100, 50))
        cv2.imwrite(str(root / "JPEGImages" / f"{stem}.jpg"), np.zeros((h, w, 3), np.uint8))
    return root


def test_reads_one_based_pixel_boxes_and_difficult(tmp_path):
    files = {
        "x": _xml("x", 100, 50, [_obj("dog", (1, 1, 100, 50)), _obj("person", (11, 6, 60, 30), 1)]),
        "y": _xml("y", 100, 50, []),
    }
    ds = read_dataset(_make(tmp_path, files, {}))
    assert ds.source_format == "voc" and ds.class_names == VOC_NAMES
    x, y = ds
    np.testing.assert_allclose(x.boxes, [[0, 0, 1, 1], [0.1, 0.1, 0.6, 0.6]], atol=1e-6)
    assert [ds.class_names[c] for c in x.class_ids] == ["dog", "person"]
    assert x.iscrowd.tolist() == [False, True]
    assert y.num_objects == 0 and (y.width, y.height) == (100, 50)


def test_custom_names_and_split(tmp_path):
    files = {
        "a": _xml("a", 100, 50, [_obj("widget", (1, 1, 10, 10))]),
        "b": _xml("b", 100, 50, [_obj("gadget", (1, 1, 10, 10))]),
    }
    root = _make(tmp_path, files, {})
    assert read_voc(root).class_names == ("gadget", "widget")
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "val.txt").write_text("b\n")
    ds = read_voc(root, split="val", class_names=["widget", "gadget"])
    assert len(ds) == 1 and ds[0].class_ids.tolist() == [1]
    with pytest.raises(
        DatasetError,
        match=r"Annotations/a\.xml: object 1: <name> 'widget' is not one of the 1 class names",
    ):
        read_voc(root, class_names=["gadget"])


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            "<name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax></bndbox>",
            "Annotations/x.xml: object 1: <bndbox> missing <ymax>",
        ),
        ("<name>dog</name>", "Annotations/x.xml: object 1: <object> missing <bndbox>"),
        (
            "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox>",
            "object 1: <object> missing <name>",
        ),
        (
            _obj("dog", (1, 1, "five", 5)),
            "Annotations/x.xml: object 1: <xmax> 'five' is not a number",
        ),
        (_obj("dog", (20, 1, 10, 5)), "Annotations/x.xml: object 1: <bndbox> max < min"),
        (
            _obj("dog", (1, 1, 300, 5)),
            "Annotations/x.xml: object 1: <bndbox> (1, 1, 300, 5) outside the 100x50 image",
        ),
        (
            _obj("dog", (1, 1, 5, 5), difficult="maybe"),
            "object 1: <difficult> 'maybe' is not 0 or 1",
        ),
    ],
)
def test_malformed_objects_are_named(tmp_path, obj, expected):
    root = _make(tmp_path, {"x": _xml("x", 100, 50, [obj])}, {})
    with pytest.raises(DatasetError) as info:
        read_voc(root)
    assert expected in str(info.value)


def test_xml_parse_error_has_line_number(tmp_path):
    root = _make(
        tmp_path,
        {"x": "<annotation>\n<filename>x.jpg</filename>\n<size><width>1</width>\n</annotation>\n"},
        {},
    )
    with pytest.raises(
        DatasetError, match=r"Annotations/x.xml line 4: XML parse error: mismatched tag"
    ):
        read_voc(root)


def test_missing_image_and_size_from_header(tmp_path):
    text = (
        "<annotation><filename>z.jpg</filename><object>"
        + _obj("cat", (1, 1, 4, 4))
        + "</object></annotation>"
    )
    root = _make(tmp_path, {"z": text, "w": _xml("w", 100, 50, [])}, {"z": (40, 20)})
    ds = read_voc(root)  # z has no <size>: read from the image header
    assert (ds[1].width, ds[1].height) == (40, 20)
    (root / "JPEGImages" / "z.jpg").unlink()
    with pytest.raises(
        DatasetError, match=r"JPEGImages/z.jpg: image file not found \(named by Annotations/z.xml\)"
    ):
        read_voc(root)
    problems = Problems(strict=False)
    ds = read_voc(root, problems=problems)
    assert len(ds) == 1 and [p.code for p in problems.errors] == ["missing_image"]
    with pytest.raises(DatasetError, match=r"no annotation \.xml files"):
        read_voc(_make(tmp_path / "e", {}, {}))
