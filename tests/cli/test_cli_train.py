"""``edgekit train`` end to end on tiny generated data (one short epoch): files, spec, reload."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf


def test_cli_train_yolo_writes_checkpoint_for_export_and_eval(shapes_data, tmp_path, capsys):
    from edgekit.cli.main import main
    from edgekit.export.tflite import load_source

    cfg = tmp_path / "train.yaml"
    out = tmp_path / "run"
    cfg.write_text(
        f"model: yolo_tiny\ndata: {shapes_data}\nimg: 64\nwidth: 0.35\nepochs: 5\nbatch: 8\n"
        "eager: true\nprogress: plain\nsteps_per_epoch: 2\nval_fraction: 0.25\n"
    )
    # --epochs on the command line overrides the YAML.
    args = ["train", "--config", str(cfg), "--epochs", "1", "--out", str(out), "--no-tensorboard"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "epoch 1/1" in text and "val_AP50" in text and "trained yolo_tiny: 1 epochs" in text
    for name in (
        "best.keras",
        "last.keras",
        "best.spec.json",
        "last.spec.json",
        "labels.txt",
        "curves.png",
        "config.yaml",
    ):
        assert (out / name).is_file(), name
    assert not (out / "logs").exists() and "tensorboard: false" in (out / "config.yaml").read_text()
    model, spec = load_source(str(out / "best.keras"))
    assert (
        spec.decoder == "yolo"
        and spec.labels == ("red", "green", "blue")
        and spec.input_size == (64, 64)
    )
    pred = model(np.zeros((1, 64, 64, 3), np.float32))
    assert tuple(pred.shape) == (1, 4 + 3, 64 + 16 + 4)
    # A second run into the same folder is refused unless resumed; resuming a finished run is a no-op.
    assert main(["train", "--config", str(cfg), "--epochs", "1", "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume"]) == 0


def test_train_pose_one_step(people_data, tmp_path):
    from edgekit.export.tflite import load_source
    from edgekit.train import TrainConfig, train

    res = train(
        TrainConfig(
            model="movenet_mobilenet_v2", data=people_data, img=64, width=0.35, epochs=1, batch=4,
            steps_per_epoch=1, val_fraction=0.2, out=tmp_path / "run", eager=True,
            tensorboard=False, progress="none",
        ),
        echo=lambda s: None,
    )  # fmt: skip
    row = res.history[0]
    assert np.isfinite(row["loss"]) and 0.0 <= row["val_pck"] <= 1.0
    model, spec = load_source(str(res.best))
    assert spec.decoder == "movenet" and tuple(model.outputs[0].shape) == (None, 1, 17, 3)
