"""Detectors learn on generated shapes: validation AP50 (COCO, through the runtime decoders)
climbs far above the ~0 of an untrained detector. Slow: minutes of CPU training."""

from __future__ import annotations

import pytest

pytest.importorskip("tensorflow")
pytestmark = [pytest.mark.tf, pytest.mark.slow]


# Measured AP50 after 12 epochs (96 steps): YOLO-tiny 0.6-0.8; SSDLite 0.04 (it learns much more
# slowly at 64 px: its stride-16 first map is 4x4); untrained, both score 0.
@pytest.mark.parametrize(
    ("model", "min_ap50"), [("yolo_tiny", 0.3), ("ssdlite_mobilenet_v2", 0.01)]
)
def test_detector_learns_shapes(model, min_ap50, shapes160, tmp_path):
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
    assert res.history[0]["val_AP50"] < min_ap50 < max(r["val_AP50"] for r in res.history), (
        res.history
    )
