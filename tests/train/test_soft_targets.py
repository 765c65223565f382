"""Per-anchor soft targets from an SSD teacher, and the class loss's distillation term."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.tf

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from edgekit.errors import UsageError  # noqa: E402
from edgekit.train.losses import SSDClassLoss  # noqa: E402
from edgekit.train.soft_targets import anchor_levels, ssd_soft_target_fn  # noqa: E402
from edgekit.zoo.registry import get_entry  # noqa: E402

LABELS = ("cat", "person")


def _ssd(size: int, labels=LABELS):
    entry = get_entry("ssdlite_mobilenet_v2")
    keras.utils.set_random_seed(size)
    model = entry.create(len(labels), size, 0.35)
    return model, entry.spec(model, labels)


def _batch(spec, n=2):
    size = spec.input_size
    images = np.random.default_rng(0).uniform(-1, 1, (n, *size, 3)).astype(np.float32)
    a = spec.decoder_params["num_anchors"]
    return tf.constant(images), (tf.zeros((n, a, 5)), tf.zeros((n, a, 1)))


def test_same_size_teacher_gives_its_own_probabilities_at_temperature():
    teacher, tspec = _ssd(96)
    _, sspec = _ssd(96, ("person",))
    images, y = _batch(sspec)
    _, (boxes, classes) = ssd_soft_target_fn(teacher, tspec, sspec, ("person",), temperature=2.0)(
        images, y
    )
    logits = np.asarray(teacher(images)[1])[..., 2]  # column 2 = "person" (0 is background)
    assert classes.shape == (2, sspec.decoder_params["num_anchors"], 2)
    np.testing.assert_allclose(np.asarray(classes[..., 0]), 0.0)
    np.testing.assert_allclose(
        np.asarray(classes[..., 1]), 1 / (1 + np.exp(-logits / 2)), atol=1e-5
    )
    assert boxes.shape == y[0].shape


def test_other_size_resamples_each_level_to_the_student_grid():
    teacher, tspec = _ssd(96)
    _, sspec = _ssd(64, ("person",))
    assert [n for *_, n in anchor_levels(tspec)] == [n for *_, n in anchor_levels(sspec)]
    images, y = _batch(sspec)
    _, (_, classes) = ssd_soft_target_fn(teacher, tspec, sspec, ("person",), temperature=1.0)(
        images, y
    )
    assert classes.shape == (2, sspec.decoder_params["num_anchors"], 2)
    # the last three levels are 1x1 at both sizes: read straight from the teacher's anchors
    t_img = tf.image.resize(images, (96, 96))
    logits = np.asarray(teacher(t_img)[1])[..., 2]
    tail = sum(h * w * n for h, w, n in anchor_levels(tspec)[-3:])
    want = 1 / (1 + np.exp(-logits[:, -tail:]))
    np.testing.assert_allclose(np.asarray(classes[:, -tail:, 1]), want, atol=1e-5)


def test_refusals():
    teacher, tspec = _ssd(96)
    _, sspec = _ssd(96, ("dog",))
    with pytest.raises(UsageError, match="dog"):
        ssd_soft_target_fn(teacher, tspec, sspec, ("dog",))
    with pytest.raises(UsageError, match="temperature"):
        ssd_soft_target_fn(teacher, tspec, sspec, ("cat",), temperature=0)


def test_soft_term_vanishes_when_the_student_matches_the_teacher():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (2, 50, 3)).astype(np.float32)
    hard = np.zeros((2, 50, 1), np.float32)
    hard[:, :5] = 1
    t = 2.0
    same = 1 / (1 + np.exp(-logits[..., 1:] / t))
    plain = float(SSDClassLoss()(hard, logits))
    with_same = float(
        SSDClassLoss(soft_weight=1.0, temperature=t)(np.concatenate([hard, same], -1), logits)
    )
    assert with_same == pytest.approx(plain, rel=1e-5)
    other = np.clip(same + 0.3, 0, 1)
    with_other = float(
        SSDClassLoss(soft_weight=1.0, temperature=t)(np.concatenate([hard, other], -1), logits)
    )
    assert with_other > plain
    unused = float(SSDClassLoss(soft_weight=0.0)(np.concatenate([hard, other], -1), logits))
    assert unused == pytest.approx(plain, rel=1e-6)
