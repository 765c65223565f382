"""Image files: which files are images, how one is read, and image-folder datasets.

The one place that knows image suffixes and reads an image file for the host side (datasets,
calibration, teachers). An image-folder dataset is ``ROOT/<class name>/<image>``; it becomes an
ordinary :class:`~edgekit.data.dataset.Dataset` with one whole-image box per image whose class
is the folder, so splitting, training and evaluation treat it like any other dataset.
numpy, OpenCV and the standard library only (PIL when present, for image sizes).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgekit.data.dataset import Dataset, ImageRecord
from edgekit.errors import DatasetError

__all__ = [
    "IMAGE_SUFFIXES",
    "decode_rgb",
    "image_size",
    "is_image_folder",
    "list_images",
    "read_image_folder",
    "read_image_size",
    "read_rgb",
]

#: The suffixes of image files, everywhere: datasets, calibration folders, ``--source`` folders.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")


def read_image_size(path: Path | str) -> tuple[int, int]:
    """(width, height) from the image header (PIL, else a full OpenCV decode).

    Raises :class:`DatasetError` when the file is missing or cannot be read as an image.
    """
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: image file not found")
    try:
        return image_size(p)
    except ValueError as exc:
        raise DatasetError(f"{p}: cannot read image ({exc})") from None


def image_size(path: Path | str, *, decode: bool = False) -> tuple[int, int]:
    """(width, height) of an image file: from its header, or with ``decode`` after decoding every
    pixel (so a truncated file fails). PIL reads it; OpenCV decodes it where PIL is missing.

    Raises ``ValueError`` with the decoder's reason when it cannot be read as an image.
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - PIL comes with matplotlib
        Image = None
    if Image is not None:
        try:
            with Image.open(path) as im:
                if decode:
                    im.load()
                return int(im.size[0]), int(im.size[1])
        except Exception as exc:
            raise ValueError(str(exc) or type(exc).__name__) from None
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError("OpenCV cannot decode it")
    return int(img.shape[1]), int(img.shape[0])


def decode_rgb(path: str | os.PathLike[str]) -> np.ndarray | None:
    """The one image reader: a file decoded by OpenCV as RGB uint8 (H, W, 3), or None when it
    is missing, unreadable or not an image OpenCV can decode. Callers say why in their own
    error (:func:`read_rgb`, :func:`edgekit.io.sources.read_image`)."""
    import cv2

    try:
        data = np.fromfile(str(path), dtype=np.uint8)  # any path, unlike cv2.imread on Windows
    except (OSError, ValueError):
        return None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as RGB uint8 (``DatasetError`` naming the file if OpenCV cannot read it)."""
    img = decode_rgb(path)
    if img is None:
        raise DatasetError(f"{path}: cannot read image")
    return img


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted by relative path."""
    return sorted(
        (p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
        key=lambda p: p.relative_to(folder).as_posix(),
    )


def _class_folders(root: Path) -> list[Path]:
    return sorted(
        d
        for d in root.iterdir()
        if d.is_dir()
        and any(p.suffix.lower() in IMAGE_SUFFIXES for p in d.iterdir() if p.is_file())
    )


def is_image_folder(path: Path | str) -> bool:
    """True for a folder whose subfolders hold images (and that has no ``images``/``labels``)."""
    p = Path(path)
    if not p.is_dir() or (p / "labels").is_dir() or (p / "Annotations").is_dir():
        return False
    return bool(_class_folders(p))


def read_image_folder(path: Path | str) -> Dataset:
    """Read ``ROOT/<class>/<image>`` into a Dataset (classes sorted by folder name)."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder of class subfolders")
    folders = _class_folders(root)
    if not folders:
        raise DatasetError(
            f"{root}: no class subfolders with images (expected ROOT/<class>/<image>)"
        )
    records = []
    for c, folder in enumerate(folders):
        for img in sorted(
            p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        ):
            w, h = read_image_size(img)
            records.append(
                ImageRecord(
                    img,
                    w,
                    h,
                    np.array([[0.0, 0.0, 1.0, 1.0]], np.float32),
                    np.array([c]),
                    image_id=len(records) + 1,
                )
            )
    return Dataset(
        tuple(records), tuple(d.name for d in folders), source_format="folder", root=root
    )
