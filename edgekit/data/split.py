"""Deterministic train/validation split by image, stable across machines and file order."""

from __future__ import annotations

import hashlib

from edgekit.data.dataset import Dataset, display_path
from edgekit.errors import DatasetError

__all__ = ["split_dataset"]


def _key(dataset: Dataset, index: int, seed: int) -> str:
    record = dataset.images[index]
    name = display_path(record.path, dataset.root) if dataset.root else record.path.name
    return hashlib.sha1(f"{seed}:{name}".encode()).hexdigest()


def split_dataset(dataset: Dataset, val_fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Split into (train, val) by image.

    Images are ranked by a hash of ``seed`` and their path relative to the dataset root, and the
    first ``round(n * val_fraction)`` go to validation (at least one when ``val_fraction > 0``
    and there are two or more images). The same files and seed always give the same split, in
    any order and on any machine; adding images moves only a few across the boundary. Both
    parts keep the dataset's order.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(dataset)
    n_val = round(n * val_fraction)
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    ranked = sorted(range(n), key=lambda i: _key(dataset, i, seed))
    val = set(ranked[:n_val])
    train_idx = [i for i in range(n) if i not in val]
    val_idx = [i for i in range(n) if i in val]
    return dataset.subset(train_idx), dataset.subset(val_idx)
