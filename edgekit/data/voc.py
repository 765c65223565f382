"""Pascal VOC datasets: ``Annotations/*.xml`` + ``JPEGImages/`` (+ ``ImageSets/Main/<split>.txt``).

Boxes are ``<bndbox>`` ``xmin ymin xmax ymax`` in 1-based inclusive pixels, so the continuous
0-based box is ``[xmin - 1, xmax]``; ``difficult`` objects are kept with ``iscrowd`` set (the
flag evaluation ignores). Standard library and numpy only.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgekit.data.dataset import Dataset, ImageRecord, Problems, display_path
from edgekit.data.images import read_image_size
from edgekit.errors import DatasetError

__all__ = ["VOC_NAMES", "read_voc"]

VOC_NAMES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip

_COORDS = ("xmin", "ymin", "xmax", "ymax")


def read_voc(
    path: Path | str,
    *,
    split: str | None = None,
    class_names: Sequence[str] | None = None,
    problems: Problems | None = None,
) -> Dataset:
    """Read a VOC folder (the one holding ``Annotations/``).

    ``split``: read only the ids in ``ImageSets/Main/<split>.txt``. ``class_names``: the class
    order (default: the 20 VOC classes when every name is one of them, else the sorted names).
    """
    problems = problems if problems is not None else Problems(strict=True)
    root = Path(path)
    if root.is_file():
        xml_files = [root]
        root = root.parent.parent
    else:
        ann_dir = root / "Annotations"
        if not ann_dir.is_dir():
            raise DatasetError(f"{root}: no Annotations/ folder (not a Pascal VOC dataset)")
        if split:
            list_file = root / "ImageSets" / "Main" / f"{split}.txt"
            if not list_file.is_file():
                raise DatasetError(f"{display_path(list_file, root)}: split list not found")
            ids = [
                ln.split()[0]
                for ln in list_file.read_text(encoding="utf-8").splitlines()
                if ln.strip()
            ]
            xml_files = [ann_dir / f"{i}.xml" for i in ids]
        else:
            xml_files = sorted(ann_dir.glob("*.xml"))
    if not xml_files:
        raise DatasetError(f"{root}: no annotation .xml files")

    parsed = []
    for xml_path in xml_files:
        item = _parse_xml(xml_path, root, problems)
        if item is not None:
            parsed.append(item)

    found = sorted({obj[0] for item in parsed for obj in item[3]})
    if class_names:
        names = tuple(class_names)
    elif set(found) <= set(VOC_NAMES):
        names = VOC_NAMES
    else:
        names = tuple(found)
    index = {n: i for i, n in enumerate(names)}

    records = []
    for n, (xml_path, image_path, size, objects) in enumerate(parsed, start=1):
        xname = display_path(xml_path, root)
        if size is None:
            try:
                size = read_image_size(image_path)
            except DatasetError as exc:
                problems.error(
                    xname, "<size>", f"missing, and the image cannot be read: {exc}", "syntax"
                )
                continue
        width, height = size
        boxes, classes, difficult = [], [], []
        for obj_no, (name, coords, diff) in enumerate(objects, start=1):
            where = f"object {obj_no}"
            if name not in index:
                problems.error(
                    xname,
                    where,
                    f"<name> {name!r} is not one of the {len(names)} class names",
                    "range",
                )
                continue
            xmin, ymin, xmax, ymax = coords
            if xmin < 0 or ymin < 0 or xmax > width + 1 or ymax > height + 1:
                problems.error(
                    xname,
                    where,
                    f"<bndbox> ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) outside the {width}x{height} image",
                    "range",
                )
                continue
            box = np.clip(
                [(xmin - 1) / width, (ymin - 1) / height, xmax / width, ymax / height], 0.0, 1.0
            )
            boxes.append(box)
            classes.append(index[name])
            difficult.append(diff)
        records.append(
            ImageRecord(
                image_path,
                width,
                height,
                np.asarray(boxes, np.float32).reshape(-1, 4),
                np.asarray(classes, np.int64),
                None,
                np.asarray(difficult, bool),
                n,
            )
        )
    return Dataset(tuple(records), names, (), "voc", root)


def _parse_xml(xml_path: Path, root: Path, problems: Problems):
    """-> (xml_path, image_path, (w, h) or None, [(name, (xmin, ymin, xmax, ymax), difficult)])."""
    xname = display_path(xml_path, root)
    try:
        tree = ET.parse(xml_path)
    except FileNotFoundError:
        problems.error(xname, "", "annotation file not found", "missing_label")
        return None
    except ET.ParseError as exc:
        line, col = exc.position
        msg = str(exc).split(":")[0]
        problems.error(
            xname, f"line {line}", f"XML parse error: {msg} (column {col + 1})", "syntax"
        )
        return None
    ann = tree.getroot()
    filename = (ann.findtext("filename") or "").strip() or f"{xml_path.stem}.jpg"
    image_path = root / "JPEGImages" / filename
    if not image_path.is_file():
        problems.error(
            display_path(image_path, root),
            "",
            f"image file not found (named by {xname})",
            "missing_image",
        )
        return None
    size = None
    size_el = ann.find("size")
    if size_el is not None:
        try:
            w, h = (
                int(float(size_el.findtext("width", "0"))),
                int(float(size_el.findtext("height", "0"))),
            )
        except ValueError:
            problems.error(xname, "<size>", "<width>/<height> are not numbers", "syntax")
            return None
        size = (w, h) if w > 0 and h > 0 else None
    objects = []
    for obj_no, obj in enumerate(ann.findall("object"), start=1):
        where = f"object {obj_no}"
        name = (obj.findtext("name") or "").strip()
        if not name:
            problems.error(xname, where, "<object> missing <name>", "syntax")
            continue
        diff_text = (obj.findtext("difficult") or "0").strip()
        if diff_text not in ("0", "1"):
            problems.error(xname, where, f"<difficult> {diff_text!r} is not 0 or 1", "syntax")
            continue
        bnd = obj.find("bndbox")
        if bnd is None:
            problems.error(xname, where, "<object> missing <bndbox>", "syntax")
            continue
        coords = []
        for tag in _COORDS:
            text = bnd.findtext(tag)
            if text is None:
                problems.error(xname, where, f"<bndbox> missing <{tag}>", "syntax")
                break
            try:
                coords.append(float(text))
            except ValueError:
                problems.error(xname, where, f"<{tag}> {text.strip()!r} is not a number", "syntax")
                break
        if len(coords) != 4:
            continue
        if coords[2] < coords[0] or coords[3] < coords[1]:
            problems.error(
                xname,
                where,
                f"<bndbox> max < min (xmin {coords[0]:g}, xmax {coords[2]:g}, ymin {coords[1]:g}, ymax {coords[3]:g})",
                "range",
            )
            continue
        objects.append((name, tuple(coords), diff_text == "1"))
    return xml_path, image_path, size, objects
