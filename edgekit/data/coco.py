"""COCO JSON datasets (``instances_*.json`` boxes, ``person_keypoints_*.json`` keypoints).

Category ids are mapped to contiguous 0-based class ids (sorted by id); the original ids stay in
``Dataset.category_ids`` so that ``to_coco_json`` writes ground truth evaluation tools accept.
Images without annotations are kept, with no objects. Standard library and numpy only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data.dataset import Dataset, ImageRecord, Problems, display_path
from edgekit.errors import DatasetError

__all__ = ["read_coco", "to_coco_json", "write_coco_json"]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _images_dir(json_path: Path, images: list[dict]) -> Path:
    """Where the ``file_name`` entries live: the first candidate folder holding the first image."""
    parent = json_path.parent
    split = json_path.stem.split("_", 1)[1] if "_" in json_path.stem else ""
    candidates = [parent, parent / "images", parent.parent, parent.parent / "images"]
    if split:
        candidates += [parent.parent / split, parent.parent / "images" / split, parent / split]
    names = [
        im.get("file_name")
        for im in images[:1]
        if isinstance(im, dict) and isinstance(im.get("file_name"), str)
    ]
    for c in candidates:
        if names and (c / names[0]).is_file():
            return c
    return parent


def read_coco(
    path: Path | str,
    *,
    images_dir: Path | str | None = None,
    problems: Problems | None = None,
    check_files: bool = True,
) -> Dataset:
    """Read a COCO annotations JSON. ``images_dir``: where ``file_name`` is relative to (default:
    guessed from the JSON's folder: itself, ``images/``, ``../<split>``, ``../images/<split>``).
    ``check_files``: report images whose file is missing."""
    problems = problems if problems is not None else Problems(strict=True)
    json_path = Path(path)
    root = json_path.parent
    name = json_path.name
    try:
        text = json_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{json_path}: annotations file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{name}: cannot read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{name} line {exc.lineno}: JSON syntax error: {exc.msg} (column {exc.colno})"
        ) from None
    if not isinstance(data, dict):
        raise DatasetError(
            f"{name}: expected a JSON object with images, annotations and categories"
        )
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{name}: {key}: missing or not a list")
    anns = data.get("annotations", [])
    if not isinstance(anns, list):
        raise DatasetError(f"{name}: annotations: not a list")

    # categories -> contiguous class ids
    cats: dict[int, dict] = {}
    for i, cat in enumerate(data["categories"]):
        where = f"categories[{i}]"
        if (
            not isinstance(cat, dict)
            or not _is_int(cat.get("id"))
            or not isinstance(cat.get("name"), str)
        ):
            problems.error(
                name, where, "expected an object with integer 'id' and string 'name'", "syntax"
            )
            continue
        if cat["id"] in cats:
            problems.error(name, f"{where}.id", f"duplicate category id {cat['id']}", "duplicate")
            continue
        cats[cat["id"]] = cat
    if not cats:
        raise DatasetError(f"{name}: categories: no valid category")
    category_ids = tuple(sorted(cats))
    class_of = {cid: c for c, cid in enumerate(category_ids)}
    class_names = tuple(cats[c]["name"] for c in category_ids)
    keypoint_names: tuple[str, ...] = ()
    for cid in category_ids:
        kn = cats[cid].get("keypoints")
        if kn:
            if not isinstance(kn, list) or not all(isinstance(s, str) for s in kn):
                problems.error(
                    name, f"categories (id {cid}).keypoints", "expected a list of names", "syntax"
                )
            elif keypoint_names and tuple(kn) != keypoint_names:
                problems.error(
                    name,
                    f"categories (id {cid}).keypoints",
                    "differs from another category's keypoints",
                    "syntax",
                )
            else:
                keypoint_names = tuple(kn)
    nk = len(keypoint_names) if keypoint_names else None

    # images
    img_dir = Path(images_dir) if images_dir is not None else _images_dir(json_path, data["images"])
    images: dict[int, dict] = {}
    order: list[int] = []
    for i, im in enumerate(data["images"]):
        where = f"images[{i}]"
        if not isinstance(im, dict):
            problems.error(name, where, "expected an object", "syntax")
            continue
        bad = next((k for k in ("id", "width", "height") if not _is_int(im.get(k))), None)
        if bad is not None:
            problems.error(
                name, f"{where}.{bad}", f"expected an integer, got {im.get(bad)!r}", "syntax"
            )
            continue
        if not isinstance(im.get("file_name"), str) or not im["file_name"]:
            problems.error(name, f"{where}.file_name", "missing or not a string", "syntax")
            continue
        if im["width"] <= 0 or im["height"] <= 0:
            problems.error(
                name, where, f"image size {im['width']}x{im['height']} is not positive", "range"
            )
            continue
        if im["id"] in images:
            problems.error(name, f"{where}.id", f"duplicate image id {im['id']}", "duplicate")
            continue
        if check_files and not (img_dir / im["file_name"]).is_file():
            problems.error(
                display_path(img_dir / im["file_name"], root),
                "",
                f"image file not found ({name}: {where}.file_name)",
                "missing_image",
            )
            continue
        images[im["id"]] = im
        order.append(im["id"])

    # annotations
    objs: dict[int, list[tuple[list[float], int, int, np.ndarray | None]]] = {i: [] for i in order}
    all_ids = {
        im.get("id") for im in data["images"] if isinstance(im, dict) and _is_int(im.get("id"))
    }
    for i, ann in enumerate(anns):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            problems.error(name, where, "expected an object", "syntax")
            continue
        image_id, cat_id = ann.get("image_id"), ann.get("category_id")
        if image_id not in objs:
            if image_id not in all_ids:
                problems.error(
                    name, f"{where}.image_id", f"no image with id {image_id!r}", "reference"
                )
            continue  # image exists but was rejected above: already reported
        if cat_id not in class_of:
            problems.error(
                name, f"{where}.category_id", f"no category with id {cat_id!r}", "reference"
            )
            continue
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            got = f"{len(bbox)} values" if isinstance(bbox, list) else repr(bbox)
            problems.error(
                name,
                f"{where}.bbox",
                f"expected 4 numbers [x, y, width, height], got {got}",
                "syntax",
            )
            continue
        if bbox[2] < 0 or bbox[3] < 0:
            problems.error(
                name, f"{where}.bbox", f"negative width or height {bbox[2]:g}x{bbox[3]:g}", "range"
            )
            continue
        crowd = ann.get("iscrowd", 0)
        if crowd not in (0, 1):
            problems.error(name, f"{where}.iscrowd", f"expected 0 or 1, got {crowd!r}", "syntax")
            continue
        im = images[image_id]
        w, h = im["width"], im["height"]
        x, y, bw, bh = (float(v) for v in bbox)
        box = [x / w, y / h, (x + bw) / w, (y + bh) / h]
        kps = None
        if nk is not None:
            raw = ann.get("keypoints")
            if raw is None:
                kps = np.zeros((nk, 3), np.float32)
            elif (
                not isinstance(raw, list)
                or len(raw) != 3 * nk
                or not all(_is_number(v) for v in raw)
            ):
                got = f"{len(raw)} values" if isinstance(raw, list) else repr(raw)
                problems.error(
                    name,
                    f"{where}.keypoints",
                    f"expected {3 * nk} numbers (x, y, v) x {nk}, got {got}",
                    "syntax",
                )
                continue
            else:
                kps = np.asarray(raw, np.float32).reshape(nk, 3)
                if not np.isin(kps[:, 2], (0, 1, 2)).all():
                    problems.error(
                        name, f"{where}.keypoints", "visibility values must be 0, 1 or 2", "range"
                    )
                    continue
                kps[:, 0] /= w
                kps[:, 1] /= h
                kps[kps[:, 2] == 0, :2] = 0.0
        objs[image_id].append((box, class_of[cat_id], int(crowd), kps))

    records = []
    for image_id in order:
        im = images[image_id]
        items = objs[image_id]
        boxes = np.clip(np.asarray([o[0] for o in items], np.float32).reshape(-1, 4), 0.0, 1.0)
        kps = None
        if nk is not None:
            kps = np.clip(
                np.asarray([o[3] for o in items], np.float32).reshape(-1, nk, 3), 0.0, None
            )
            kps[..., :2] = np.minimum(kps[..., :2], 1.0)
        records.append(
            ImageRecord(
                img_dir / im["file_name"],
                im["width"],
                im["height"],
                boxes,
                np.asarray([o[1] for o in items], np.int64),
                kps,
                np.asarray([o[2] for o in items], bool),
                image_id,
            )
        )
    return Dataset(tuple(records), class_names, keypoint_names, "coco", img_dir, category_ids)


def to_coco_json(dataset: Dataset) -> dict[str, Any]:
    """COCO-format ground truth (pixels, ``bbox`` as ``[x, y, w, h]``, original category ids).

    ``area`` is the box area (the reader does not keep segmentation areas). Image ids are the
    records' ``image_id``; ``file_name`` is relative to ``dataset.root`` when possible.
    """
    ids = [r.image_id for r in dataset.images]
    if len(set(ids)) != len(ids):
        raise DatasetError("to_coco_json: image ids are not unique")
    images, annotations = [], []
    ann_id = 1
    for r in dataset.images:
        file_name = display_path(r.path, dataset.root) if dataset.root else r.path.name
        images.append(
            {"id": int(r.image_id), "file_name": file_name, "width": r.width, "height": r.height}
        )
        px = r.boxes_pixels().astype(np.float64)
        for k in range(r.num_objects):
            x0, y0, x1, y1 = (float(v) for v in px[k])
            ann: dict[str, Any] = {
                "id": ann_id,
                "image_id": int(r.image_id),
                "category_id": int(dataset.category_ids[int(r.class_ids[k])]),
                "bbox": [round(x0, 3), round(y0, 3), round(x1 - x0, 3), round(y1 - y0, 3)],
                "area": round((x1 - x0) * (y1 - y0), 3),
                "iscrowd": int(r.iscrowd[k]),
            }
            if r.keypoints is not None:
                kp = r.keypoints[k].astype(np.float64)
                flat = []
                for x, y, v in kp:
                    flat += [round(x * r.width, 2), round(y * r.height, 2), int(v)]
                ann["keypoints"] = flat
                ann["num_keypoints"] = int((kp[:, 2] > 0).sum())
            annotations.append(ann)
            ann_id += 1
    categories = []
    for c, name in enumerate(dataset.class_names):
        cat: dict[str, Any] = {
            "id": int(dataset.category_ids[c]),
            "name": name,
            "supercategory": "",
        }
        if dataset.keypoint_names:
            cat["keypoints"] = list(dataset.keypoint_names)
        categories.append(cat)
    return {"images": images, "annotations": annotations, "categories": categories}


def write_coco_json(dataset: Dataset, path: Path | str) -> Path:
    """Write :func:`to_coco_json` to ``path`` (atomically)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(to_coco_json(dataset)), encoding="utf-8")
    tmp.replace(out)
    return out
