"""Deterministic split by image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.data import Dataset, ImageRecord, split_dataset
from edgekit.errors import DatasetError


def _dataset(names: list[str]) -> Dataset:
    recs = [
        ImageRecord(Path("/r/images") / n, 10, 10, np.zeros((0, 4)), np.zeros(0), image_id=i)
        for i, n in enumerate(names)
    ]
    return Dataset(tuple(recs), ("a",), root=Path("/r"))


def _names(ds: Dataset) -> list[str]:
    return [r.path.name for r in ds]


def test_split_is_exact_disjoint_and_stable():
    names = [f"{i:04d}.jpg" for i in range(200)]
    ds = _dataset(names)
    train, val = split_dataset(ds, 0.2, seed=0)
    assert len(val) == 40 and len(train) == 160
    assert set(_names(train)).isdisjoint(_names(val)) and set(_names(train)) | set(
        _names(val)
    ) == set(names)
    assert _names(split_dataset(ds, 0.2, seed=0)[1]) == _names(val)
    # order of the input does not matter; both parts keep the dataset's order
    shuffled = _dataset(list(reversed(names)))
    assert sorted(_names(split_dataset(shuffled, 0.2, seed=0)[1])) == sorted(_names(val))
    assert _names(val) == sorted(_names(val))
    # another seed gives another split; adding images moves few across
    assert _names(split_dataset(ds, 0.2, seed=1)[1]) != _names(val)
    bigger = _dataset([*names, *(f"x{i}.jpg" for i in range(10))])
    moved = set(_names(val)) - set(_names(split_dataset(bigger, 0.2, seed=0)[1]))
    assert len(moved) <= 5


def test_split_edges():
    ds = _dataset(["a.jpg", "b.jpg", "c.jpg"])
    assert [len(p) for p in split_dataset(ds, 0.0)] == [3, 0]
    assert [len(p) for p in split_dataset(ds, 0.01)] == [2, 1]  # at least one for validation
    with pytest.raises(DatasetError, match="val_fraction"):
        split_dataset(ds, 1.0)
