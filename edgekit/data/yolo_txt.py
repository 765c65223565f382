"""YOLO txt datasets (Ultralytics layout): ``images/`` + ``labels/`` + an optional ``data.yaml``.

One ``class cx cy w h`` line per box (normalized, class 0-based), optionally followed by
``kpt_shape[0]`` keypoints of ``x y [visibility]`` when ``data.yaml`` has ``kpt_shape``. An empty
label file means no objects; a missing one also means no objects but is reported as a warning.
The label of ``.../images/a/b.jpg`` is ``.../labels/a/b.txt``. numpy and PyYAML only.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgekit.core.types import COCO80_NAMES, COCO_KEYPOINT_NAMES
from edgekit.data.dataset import (
    Dataset,
    ImageRecord,
    Problems,
    display_path,
    stable_image_ids,
)
from edgekit.data.images import IMAGE_SUFFIXES, list_images, read_image_size
from edgekit.errors import DatasetError

__all__ = ["format_yolo_lines", "label_path_for", "read_yolo", "write_yolo"]

_TOL = 1e-6
_YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml")


def label_path_for(image: Path) -> Path:
    """``.../images/x/y.jpg`` -> ``.../labels/x/y.txt`` (the last ``images`` folder is replaced)."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
def _load_yaml(path: Path, root: Path) -> dict:
    import yaml

    name = display_path(path, root)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"{name}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DatasetError(f"{name}{where}: YAML syntax error: {problem}") from None
    if not isinstance(data, dict):
        raise DatasetError(
            f"{name}: expected a mapping with 'names' and 'train'/'val', got {type(data).__name__}"
        )
    return data


def _names_from_yaml(data: dict, name: str) -> tuple[str, ...]:
    names = data.get("names")
    if names is None:
        raise DatasetError(
            f"{name}: names: missing (a list of class names or a {{id: name}} mapping)"
        )
    if isinstance(names, dict):
        try:
            keyed = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise DatasetError(f"{name}: names: mapping keys must be integer class ids") from None
        if sorted(keyed) != list(range(len(keyed))):
            raise DatasetError(
                f"{name}: names: class ids must be 0..{len(keyed) - 1} without gaps, got {sorted(keyed)}"
            )
        result = tuple(keyed[i] for i in range(len(keyed)))
    elif isinstance(names, list):
        result = tuple(str(v) for v in names)
    else:
        raise DatasetError(
            f"{name}: names: expected a list or a mapping, got {type(names).__name__}"
        )
    nc = data.get("nc")
    if nc is not None and nc != len(result):
        raise DatasetError(f"{name}: nc: says {nc} classes but names lists {len(result)}")
    if not result:
        raise DatasetError(f"{name}: names: is empty")
    return result


def _images_from_entry(entry: str, base: Path, yaml_name: str, key: str) -> list[Path]:
    target = Path(entry)
    if not target.is_absolute():
        target = base / target
    if target.is_dir():
        return list_images(target)
    if target.is_file() and target.suffix.lower() == ".txt":
        out = []
        for line in target.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line:
                p = Path(line)
                out.append(p if p.is_absolute() else (target.parent / p))
        return out
    if target.is_file() and target.suffix.lower() in IMAGE_SUFFIXES:
        return [target]
    raise DatasetError(
        f"{yaml_name}: {key}: {entry!r} is not an image folder or a list file ({target} not found)"
    )


def read_yolo(
    path: Path | str,
    *,
    split: str | None = None,
    names: Sequence[str] | None = None,
    problems: Problems | None = None,
) -> Dataset:
    """Read a YOLO txt dataset.

    ``path``: a ``data.yaml``, a folder holding one, or a bare folder with ``images/`` and
    ``labels/`` (class names from ``names``, else the 80 COCO names when every class id fits).
    ``split``: "train", "val" or "test" of the yaml (default: all of them, without repeats).
    """
    problems = problems if problems is not None else Problems(strict=True)
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    yaml_path = p if p.is_file() else next((p / n for n in _YAML_NAMES if (p / n).is_file()), None)
    kpt_shape: tuple[int, int] | None = None
    class_names: tuple[str, ...] | None = tuple(names) if names else None
    if yaml_path is not None:
        folder = yaml_path.parent
        data = _load_yaml(yaml_path, folder)
        yname = display_path(yaml_path, folder)
        base = Path(data["path"]) if data.get("path") else folder
        if not base.is_absolute():
            base = (folder / base).resolve()
        root = base
        if class_names is None:
            class_names = _names_from_yaml(data, yname)
        if data.get("kpt_shape") is not None:
            ks = data["kpt_shape"]
            if not (
                isinstance(ks, list)
                and len(ks) == 2
                and ks[1] in (2, 3)
                and isinstance(ks[0], int)
                and ks[0] > 0
            ):
                raise DatasetError(
                    f"{yname}: kpt_shape: expected [num_keypoints, 2 or 3], got {ks!r}"
                )
            kpt_shape = (int(ks[0]), int(ks[1]))
        keys = [split] if split else [k for k in ("train", "val", "test") if data.get(k)]
        if not keys:
            raise DatasetError(f"{yname}: no 'train', 'val' or 'test' entry")
        image_paths: list[Path] = []
        seen: set[Path] = set()
        for key in keys:
            entry = data.get(key)
            if not entry:
                raise DatasetError(f"{yname}: {key}: missing (the split asked for)")
            for e in entry if isinstance(entry, list) else [entry]:
                for img in _images_from_entry(str(e), base, yname, key):
                    resolved = img.resolve()
                    if resolved not in seen:
                        seen.add(resolved)
                        image_paths.append(img)
    else:
        root = p
        img_dir = p / "images" if (p / "images").is_dir() else p
        image_paths = list_images(img_dir)
        if split and (img_dir / split).is_dir():
            image_paths = list_images(img_dir / split)
    if not image_paths:
        raise DatasetError(f"{p}: no images found")

    per_line = 5 + (kpt_shape[0] * kpt_shape[1] if kpt_shape else 0)
    parsed: list[tuple[Path, list[tuple[int, list[float]]]]] = []
    max_class = -1
    for img in image_paths:
        label = label_path_for(img)
        lname = display_path(label, root)
        if not label.is_file():
            problems.warn(
                lname,
                "",
                "label file missing (image counted as having no objects)",
                "missing_label",
            )
            parsed.append((img, []))
            continue
        try:
            text = label.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.error(lname, "", f"cannot read ({exc})", "unreadable")
            continue
        rows = _parse_label_text(text, lname, per_line, kpt_shape, problems)
        for _, values in rows:
            max_class = max(max_class, int(values[0]))
        parsed.append((img, rows))

    if class_names is None:
        if max_class < len(COCO80_NAMES):
            class_names = COCO80_NAMES
        else:
            raise DatasetError(
                f"{display_path(p, root)}: labels use class {max_class} but no class names were given",
                hint="add a data.yaml with 'names' or pass --names",
            )
    nc = len(class_names)
    nk = kpt_shape[0] if kpt_shape else None
    ids = stable_image_ids([img for img, _ in parsed])
    records = []
    for (img, rows), image_id in zip(parsed, ids, strict=True):
        try:
            width, height = read_image_size(img)
        except DatasetError as exc:
            code = "unreadable_image" if img.is_file() else "missing_image"
            problems.error(display_path(img, root), "", str(exc).split(": ", 1)[-1], code)
            continue
        lname = display_path(label_path_for(img), root)
        boxes, classes, kps = [], [], []
        for line_no, values in rows:
            cls = int(values[0])
            if not 0 <= cls < nc:
                problems.error(
                    lname, f"line {line_no}", f"class {cls} out of range ({nc} classes)", "range"
                )
                continue
            cx, cy, w, h = values[1:5]
            boxes.append(np.clip([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 0.0, 1.0))
            classes.append(cls)
            if kpt_shape:
                kps.append(_keypoints(values[5:], kpt_shape))
        keypoints = None
        if nk is not None:
            keypoints = np.asarray(kps, np.float32).reshape(-1, nk, 3)
        records.append(
            ImageRecord(
                img,
                width,
                height,
                np.asarray(boxes, np.float32).reshape(-1, 4),
                np.asarray(classes, np.int64),
                keypoints,
                None,
                image_id,
            )
        )
    keypoint_names: tuple[str, ...] = ()
    if nk is not None:
        keypoint_names = (
            COCO_KEYPOINT_NAMES
            if nk == len(COCO_KEYPOINT_NAMES)
            else tuple(f"kp{i}" for i in range(nk))
        )
    return Dataset(tuple(records), class_names, keypoint_names, "yolo", root)


def _parse_label_text(
    text: str, lname: str, per_line: int, kpt_shape: tuple[int, int] | None, problems: Problems
) -> list[tuple[int, list[float]]]:
    expected = "'class cx cy w h'" + (
        f" + {kpt_shape[0]}x{kpt_shape[1]} keypoint values" if kpt_shape else ""
    )
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"line {line_no}"
        if len(tokens) != per_line:
            problems.error(
                lname, where, f"expected {per_line} numbers {expected}, got {len(tokens)}", "syntax"
            )
            continue
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            bad = next(t for t in tokens if not _is_float(t))
            problems.error(lname, where, f"{bad!r} is not a number", "syntax")
            continue
        if not all(np.isfinite(values)):
            problems.error(lname, where, "contains nan or inf", "syntax")
            continue
        if values[0] != int(values[0]):
            problems.error(lname, where, f"class {tokens[0]} is not an integer", "syntax")
            continue
        if values[0] < 0:
            problems.error(lname, where, f"class {tokens[0]} out of range (negative)", "range")
            continue
        ok = True
        for field_name, value in zip(("cx", "cy", "w", "h"), values[1:5], strict=True):
            if not -_TOL <= value <= 1 + _TOL:
                problems.error(lname, where, f"{field_name} {value:g} outside [0, 1]", "range")
                ok = False
                break
        if ok and kpt_shape:
            k, d = kpt_shape
            for i in range(k):
                x, y = values[5 + i * d], values[6 + i * d]
                vis = values[7 + i * d] if d == 3 else 2.0
                if d == 3 and vis not in (0.0, 1.0, 2.0):
                    problems.error(
                        lname, where, f"keypoint {i} visibility {vis:g} is not 0, 1 or 2", "range"
                    )
                    ok = False
                    break
                if vis > 0 and not (-_TOL <= x <= 1 + _TOL and -_TOL <= y <= 1 + _TOL):
                    problems.error(
                        lname, where, f"keypoint {i} ({x:g}, {y:g}) outside [0, 1]", "range"
                    )
                    ok = False
                    break
        if ok:
            rows.append((line_no, values))
    return rows


def _keypoints(values: list[float], kpt_shape: tuple[int, int]) -> np.ndarray:
    k, d = kpt_shape
    arr = np.asarray(values, np.float32).reshape(k, d)
    if d == 2:
        vis = np.where((arr[:, 0] > 0) | (arr[:, 1] > 0), 2.0, 0.0).astype(np.float32)
        arr = np.concatenate([arr, vis[:, None]], axis=1)
    arr[:, :2] = np.clip(arr[:, :2], 0.0, 1.0)
    return arr


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def format_yolo_lines(record: ImageRecord) -> list[str]:
    """The label lines of one image: ``class cx cy w h [x y v ...]`` with 6 decimals."""
    lines = []
    for i in range(record.num_objects):
        x0, y0, x1, y1 = (float(v) for v in record.boxes[i])
        parts = [
            str(int(record.class_ids[i])),
            *(f"{v:.6f}" for v in ((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0)),
        ]
        if record.keypoints is not None:
            for x, y, v in record.keypoints[i]:
                parts += [f"{x:.6f}", f"{y:.6f}", f"{int(v)}"]
        lines.append(" ".join(parts))
    return lines


def write_yolo(dataset: Dataset, out_dir: Path | str, *, images: str = "copy") -> Path:
    """Write ``dataset`` as ``out_dir/images``, ``out_dir/labels`` and ``out_dir/data.yaml``.

    ``images``: "copy" (default), "symlink", or "none" (labels and yaml only). Returns the yaml path.
    """
    import yaml

    if images not in ("copy", "symlink", "none"):
        raise DatasetError(f"write_yolo: images must be copy, symlink or none, got {images!r}")
    out = Path(out_dir)
    used: set[str] = set()
    for record in dataset.images:
        rel = display_path(record.path, dataset.root) if dataset.root else record.path.name
        if rel.startswith("../") or Path(rel).is_absolute():
            rel = record.path.name
        if rel.startswith("images/"):
            rel = rel[len("images/") :]
        if rel in used:
            raise DatasetError(f"write_yolo: two images would be written to images/{rel}")
        used.add(rel)
        label = out / "labels" / Path(rel).with_suffix(".txt")
        label.parent.mkdir(parents=True, exist_ok=True)
        lines = format_yolo_lines(record)
        label.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        if images != "none":
            target = out / "images" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists() or target.is_symlink():
                target.unlink()
            if images == "copy":
                shutil.copy2(record.path, target)
            else:
                target.symlink_to(record.path.resolve())
    data: dict = {
        "path": ".",
        "train": "images",
        "val": "images",
        "names": dict(enumerate(dataset.class_names)),
    }
    if dataset.keypoint_names:
        data["kpt_shape"] = [len(dataset.keypoint_names), 3]
    out.mkdir(parents=True, exist_ok=True)
    yaml_path = out / "data.yaml"
    yaml_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return yaml_path
