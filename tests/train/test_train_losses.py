"""Losses, schedule, config, freezing, progress and strategy choice: small exact checks."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.tf

from edgekit.errors import ConfigError, UsageError  # noqa: E402
from edgekit.train import losses as L  # noqa: E402
from edgekit.train.config import TrainConfig, load_yaml, make_config  # noqa: E402
from edgekit.train.schedule import WarmupCosine  # noqa: E402


def _np(x):
    return float(keras.ops.convert_to_numpy(x))


def test_ssd_losses_small_when_right_and_large_when_wrong():
    cls = np.array([[[0], [2], [-1], [0]]], np.float32)  # bg, class 1 (column 2), ignored, bg
    good = np.full((1, 4, 3), -8.0, np.float32)
    good[0, 1, 2] = 8.0
    bad = -good
    loss = L.SSDClassLoss()
    assert _np(loss(cls, good)) < 1e-3 < 1.0 < _np(loss(cls, bad))
    # The ignored anchor and the background column do not count.
    other = good.copy()
    other[0, 2] = 8.0
    other[:, :, 0] = 8.0
    assert _np(loss(cls, other)) == pytest.approx(_np(loss(cls, good)), abs=1e-6)
    box_t = np.zeros((1, 4, 5), np.float32)
    box_t[0, 1] = [0.5, -0.5, 1.0, 2.0, 1.0]
    pred = np.zeros((1, 4, 4), np.float32)
    pred[0, 0] = 100.0  # a background anchor: ignored
    pred[0, 1] = [0.5, -0.5, 1.0, 0.0]  # off by 2 in tw -> huber 1.5
    assert _np(L.SSDBoxLoss()(box_t, pred)) == pytest.approx(1.5)


def test_iou_variants_on_ltrb():
    a = np.array([[1.0, 1.0, 1.0, 1.0]], np.float32)  # 2x2 box centred on the point
    assert _np(L.box_iou_ltrb(a, a, "ciou")[0]) == pytest.approx(1.0, abs=1e-5)
    b = np.array([[0.0, 0.0, 2.0, 2.0]], np.float32)  # 2x2 box shifted by (1, 1)
    iou = 1.0 / 7.0
    assert _np(L.box_iou_ltrb(a, b, "iou")[0]) == pytest.approx(iou, rel=1e-4)
    assert _np(L.box_iou_ltrb(a, b, "giou")[0]) == pytest.approx(iou - (9 - 7) / 9, rel=1e-4)
    # CIoU: same shapes (no aspect term), centre distance^2 = 2, hull diagonal^2 = 18.
    assert _np(L.box_iou_ltrb(a, b, "ciou")[0]) == pytest.approx(iou - 2 / 18, rel=1e-4)
    t = np.concatenate([a, [[1.0]]], axis=1)[None]
    assert _np(L.YoloBoxLoss()(t, a[None])) == pytest.approx(0.0, abs=1e-5)
    assert _np(L.YoloBoxLoss()(t, b[None])) == pytest.approx(1 - iou + 2 / 18, rel=1e-4)


def test_yolo_class_loss_normalized_by_positives():
    t = np.zeros((1, 4, 2), np.float32)
    t[0, 0, 1] = 1.0
    logits = np.full((1, 4, 2), -20.0, np.float32)
    logits[0, 0, 1] = 20.0
    assert _np(L.YoloClassLoss()(t, logits)) < 1e-6
    logits[0, 3, 0] = 0.0  # one undecided negative: log 2 over one positive
    assert _np(L.YoloClassLoss()(t, logits)) == pytest.approx(math.log(2), rel=1e-4)


def test_heatmap_focal_and_masked_l1():
    gt = np.zeros((1, 4, 4, 1), np.float32)
    gt[0, 1, 2, 0] = 1.0
    gt[0, 1, 1, 0] = 0.6
    near = np.clip(gt, 1e-4, 1 - 1e-4)
    assert _np(L.HeatmapFocalLoss()(gt, near)) < 0.01
    assert _np(L.HeatmapFocalLoss()(gt, np.full_like(gt, 0.5))) > 1.0
    target = np.zeros((1, 2, 2, 3), np.float32)  # K = 1: (y, x) + mask
    target[0, 0, 1] = [0.25, 0.75, 1.0]
    pred = np.zeros((1, 2, 2, 2), np.float32)
    pred[0, 1, 1] = 9.0  # masked out
    assert _np(L.MaskedL1Loss()(target, pred)) == pytest.approx(1.0)


def test_warmup_cosine():
    s = WarmupCosine(1e-2, total_steps=110, warmup_steps=10, min_ratio=0.0)
    lrs = [_np(s(i)) for i in range(110)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[9] == pytest.approx(1e-2)
    assert lrs[10] == pytest.approx(1e-2) and lrs[60] == pytest.approx(5e-3, rel=1e-3)
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:])) and lrs[-1] < 1e-5
    assert WarmupCosine.from_config(s.get_config()).get_config() == s.get_config()


def test_config_yaml_and_overrides(tmp_path):
    y = tmp_path / "train.yaml"
    y.write_text("model: yolo_tiny\ndata: d/\nepochs: 7\nval-fraction: 0.1\nfreeze: 3\n")
    cfg = make_config(load_yaml(y), epochs=9)
    assert (cfg.model, cfg.epochs, cfg.val_fraction, cfg.freeze) == ("yolo_tiny", 9, 0.1, "3")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 1  # frozen
    y.write_text("model: x\nbogus: 1\n")
    with pytest.raises(ConfigError, match="bogus"):
        load_yaml(y)
    y.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"train\.yaml"):
        load_yaml(y)
    with pytest.raises(UsageError, match="freeze"):
        TrainConfig(model="m", data="d", freeze="head")
    with pytest.raises(UsageError, match="strategy"):
        TrainConfig(model="m", data="d", strategy="tpu")
    with pytest.raises(UsageError, match="data"):
        make_config({"model": "m"})


def test_freeze_backbone_blocks():
    from edgekit.train.fit import backbone_layer_blocks, freeze_layers
    from edgekit.zoo.registry import create_model, get_entry

    entry = get_entry("ssdlite_mobilenet_v2")
    blocks = backbone_layer_blocks(entry, (64, 64))
    assert blocks["Conv1"] == 0 and blocks["block_3_expand"] == 3 and "box_head_0" not in blocks
    model = create_model("ssdlite_mobilenet_v2", 2, 64, 0.35)
    n = freeze_layers(model, blocks, "4")
    frozen = {layer.name for layer in model.layers if not layer.trainable}
    assert "block_3_project" in frozen and "block_4_expand" not in frozen and n == len(frozen)
    freeze_layers(model, blocks, "backbone")
    assert not model.get_layer("block_16_project").trainable
    assert model.get_layer("extra_1_reduce").trainable and model.get_layer("class_head_0").trainable


def test_progress_plain_is_one_line_per_epoch_and_rich_runs():
    import io

    from edgekit.train.callbacks import Progress

    for mode in ("plain", "rich"):
        buf = io.StringIO()
        p = Progress(mode, epochs=2, steps=3, stream=buf)
        for epoch in range(2):
            p.on_epoch_begin(epoch)
            for b in range(3):
                p.on_train_batch_end(b, {"loss": 1.0 / (b + 1)})
            p.on_epoch_end(epoch, {"loss": 0.5, "val_loss": 0.6})
        p.on_train_end()
        lines = [x for x in buf.getvalue().splitlines() if x.startswith("epoch ")]
        assert len(lines) == 2 and "val_loss 0.6" in lines[1], buf.getvalue()
        if mode == "plain":
            assert "\r" not in buf.getvalue() and len(buf.getvalue().splitlines()) == 2
    assert Progress("auto", 1, 1, stream=io.StringIO()).mode == "plain"  # not a TTY


def test_mixed_precision_ignored_on_cpu_and_multiworker_needs_tf_config(monkeypatch, caplog):
    import tensorflow as tf

    from edgekit.train.distribute import make_strategy, set_mixed_precision

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("a GPU is present")
    with caplog.at_level("WARNING"):
        assert set_mixed_precision(True) is False
    assert "ignored" in caplog.text and keras.mixed_precision.global_policy().name == "float32"
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UsageError, match="TF_CONFIG"):
        make_strategy("multiworker")
    assert make_strategy("auto").num_replicas_in_sync == 1
