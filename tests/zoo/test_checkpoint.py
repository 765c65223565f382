"""A .keras checkpoint as a model of its own: class selection, resizing, the zoo-entry interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tf

keras = pytest.importorskip("keras")

from edgekit.errors import UsageError  # noqa: E402
from edgekit.zoo.checkpoint import (  # noqa: E402
    CheckpointEntry,
    model_entry,
    raw_heads,
    resize_model,
    select_ssd_classes,
)
from edgekit.zoo.registry import get_entry  # noqa: E402

LABELS = ("cat", "dog", "person")


@pytest.fixture(scope="module")
def ssd_checkpoint(tmp_path_factory) -> Path:
    entry = get_entry("ssdlite_mobilenet_v2")
    model = entry.create(3, 96, 0.35)
    path = tmp_path_factory.mktemp("ckpt") / "det.keras"
    model.save(path)
    path.with_suffix(".spec.json").write_text(entry.spec(model, LABELS).to_json())
    return path


def test_model_entry_is_the_zoo_entry_or_the_checkpoint(ssd_checkpoint: Path):
    assert model_entry("ssdlite_mobilenet_v2") is get_entry("ssdlite_mobilenet_v2")
    entry = model_entry(str(ssd_checkpoint))
    assert isinstance(entry, CheckpointEntry)
    assert entry.task == "detect" and entry.decoder == "ssd_raw" and entry.backbone == ""
    nospec = ssd_checkpoint.with_name("nospec.keras")
    nospec.touch()
    with pytest.raises(UsageError, match=r"spec\.json"):
        CheckpointEntry.from_path(nospec)


def test_selected_classes_predict_what_the_original_did(ssd_checkpoint: Path):
    entry = CheckpointEntry.from_path(ssd_checkpoint)
    full = entry.create()
    one = entry.create(1, labels=("person",))
    x = np.random.default_rng(0).uniform(-1, 1, (1, 96, 96, 3)).astype(np.float32)
    (b_full, c_full), (b_one, c_one) = full(x), one(x)
    np.testing.assert_allclose(np.asarray(b_one), np.asarray(b_full), atol=1e-5)
    np.testing.assert_allclose(np.asarray(c_one), np.asarray(c_full)[..., [0, 3]], atol=1e-5)
    spec = entry.spec(one, ("person",))
    assert spec.labels == ("person",) and spec.decoder_params["num_classes"] == 1
    with pytest.raises(UsageError, match="horse"):
        entry.create(1, labels=("horse",))
    with pytest.raises(UsageError, match="name the classes"):
        entry.create(2)
    with pytest.raises(UsageError, match="width"):
        entry.create(width=0.5)


def test_resized_checkpoint_matches_regenerated_anchors(ssd_checkpoint: Path):
    entry = CheckpointEntry.from_path(ssd_checkpoint)
    small = entry.create(1, 64, labels=("person",))
    assert tuple(small.input_shape[1:3]) == (64, 64)
    spec = entry.spec(small, ("person",))
    assert spec.input_size == (64, 64)
    assert spec.decoder_params["num_anchors"] == int(small.outputs[0].shape[1])
    same = resize_model(small, (64, 64))
    assert same is small


def test_select_classes_refuses_unknown_indices(ssd_checkpoint: Path):
    model = CheckpointEntry.from_path(ssd_checkpoint).create()
    with pytest.raises(UsageError):
        select_ssd_classes(model, [5])


def test_raw_heads_of_a_pose_model():
    decoded = get_entry("movenet_mobilenet_v2").create(None, 64, 0.35)
    heads = raw_heads(decoded)
    assert len(heads.outputs) == 4 and heads.outputs[2].shape[-1] == 17
    raw = get_entry("movenet_mobilenet_v2").create(None, 64, 0.35, decode=False)
    assert raw_heads(raw) is raw
