"""Detectors learn on generated shapes: validation AP50 (COCO, through the runtime decoders)
climbs far above the ~0 of an untrained detector. Slow: minutes of CPU training."""

from __future__ import annotations

import pytest

pytest.importorskip("tensorflow")
pytestmark = [pytest.mark.tf, pytest.mark.slow]


@pytest.mark.parametrize("model", ["yolo_tiny", "ssdlite_mobilenet_v2"])
def test_detector_learns_shapes(model, shapes160, tmp_path):
    from edgekit.train import TrainConfig, train

    res = train(
        TrainConfig(
            model=model, data=shapes160, epochs=12, batch=16, img=64, width=0.35, lr=3e-3,
            val_fraction=0.2, out=tmp_path / model, progress="plain", tensorboard=False,
        ),
        echo=lambda s: None,
    )  # fmt: skip
    first, last = res.history[0], res.history[-1]
    assert last["loss"] < 0.7 * first["loss"], res.history
    assert max(r["val_AP50"] for r in res.history) > 0.3, res.history
