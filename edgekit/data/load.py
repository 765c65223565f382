"""Reading a dataset from disk: its format told from the layout, the COCO / YOLO / VOC readers,
image folders, and the split and subset evaluation and compression take.

numpy and the standard library only (no TensorFlow).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgekit.data.dataset import Dataset, Problems
from edgekit.data.images import is_image_folder, read_image_folder
from edgekit.data.split import split_dataset
from edgekit.errors import DatasetError, UsageError

__all__ = ["FORMATS", "SPLITS", "detect_format", "load_dataset", "read_dataset"]

FORMATS = ("coco", "yolo", "voc")
SPLITS = ("val", "train", "all")


# --------------------------------------------------------------------------------------------
def detect_format(path: Path | str) -> str:
    """Guess the format from the layout: a ``.json`` file or a folder with an annotations JSON ->
    "coco"; a ``.yaml`` file, a folder with ``data.yaml`` or ``labels/`` -> "yolo"; a folder with
    ``Annotations/`` -> "voc". Raises :class:`DatasetError` when nothing matches."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    if p.is_file():
        if p.suffix.lower() == ".json":
            return "coco"
        if p.suffix.lower() in (".yaml", ".yml"):
            return "yolo"
        if p.suffix.lower() == ".xml":
            return "voc"
        raise DatasetError(
            f"{p}: cannot tell the dataset format from this file (expected .json, .yaml or a folder)"
        )
    if (p / "Annotations").is_dir():
        return "voc"
    if (
        any((p / n).is_file() for n in ("data.yaml", "data.yml", "dataset.yaml"))
        or (p / "labels").is_dir()
    ):
        return "yolo"
    if _find_coco_json(p) is not None:
        return "coco"
    raise DatasetError(
        f"{p}: cannot tell the dataset format: expected Annotations/ (VOC), data.yaml or labels/ "
        "(YOLO), or a COCO annotations .json",
        hint="pass --format",
    )


def _find_coco_json(folder: Path) -> Path | None:
    candidates = sorted(folder.glob("*.json")) + sorted((folder / "annotations").glob("*.json"))
    preferred = [c for c in candidates if c.stem.startswith(("instances", "person_keypoints"))]
    chosen = preferred or candidates
    return chosen[0] if len(chosen) >= 1 else None


def read_dataset(
    path: Path | str,
    format: str = "auto",
    *,
    problems: Problems | None = None,
    split: str | None = None,
    names: Sequence[str] | None = None,
) -> Dataset:
    """Read a COCO, YOLO or VOC dataset into a :class:`Dataset` (``format="auto"`` detects it).

    ``problems``: where to collect problems (``Problems(strict=False)`` keeps going after errors);
    by default the first error raises :class:`DatasetError`. ``split`` picks "train"/"val" of a
    YOLO ``data.yaml`` or a VOC ``ImageSets/Main/<split>.txt``. ``names`` gives class names to a
    bare YOLO folder or fixes the class order of a VOC dataset.
    """
    p = Path(path)
    fmt = detect_format(p) if format == "auto" else format
    if fmt not in FORMATS:
        raise DatasetError(f"unknown dataset format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "coco":
        from edgekit.data.coco import read_coco

        if p.is_dir():
            found = _find_coco_json(p)
            if found is None:
                raise DatasetError(f"{p}: no COCO annotations .json found here or in annotations/")
            p = found
        return read_coco(p, problems=problems)
    if fmt == "yolo":
        from edgekit.data.yolo_txt import read_yolo

        return read_yolo(p, split=split, names=names, problems=problems)
    from edgekit.data.voc import read_voc

    return read_voc(p, split=split, class_names=names, problems=problems)


def load_dataset(
    path: Path | str,
    format: str = "auto",
    *,
    split: str = "all",
    val_fraction: float = 0.2,
    seed: int = 0,
    max_images: int | None = None,
) -> Dataset:
    """Read a COCO / YOLO / VOC dataset or an image folder (``format="folder"``, or "auto" for
    a folder of class subfolders), take the split ("val"/"train" of
    :func:`edgekit.data.split.split_dataset` with ``val_fraction`` and ``seed``, or "all") and
    the first ``max_images`` images. Raises :class:`DatasetError` for a missing or empty
    dataset or split."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such dataset file or folder")
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if format == "folder" or (format == "auto" and is_image_folder(p)):
        ds = read_image_folder(p)
    else:
        ds = read_dataset(p, format)
    if len(ds) == 0:
        raise DatasetError(f"{p}: the dataset has no images")
    if split != "all":
        train, val = split_dataset(ds, val_fraction, seed)
        ds = val if split == "val" else train
        if len(ds) == 0:
            raise DatasetError(
                f"{p}: the {split} split (val fraction {val_fraction}) has no images",
                hint="use --all",
            )
    if max_images is not None:
        if max_images < 1:
            raise UsageError(f"--max-images must be >= 1, got {max_images}")
        ds = ds.subset(range(min(max_images, len(ds))))
    return ds
