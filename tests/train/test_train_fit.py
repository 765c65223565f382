"""End-to-end CPU training on generated shapes: it learns, a killed run resumes where it was."""

from __future__ import annotations

import json

import pytest

from edgekit.errors import StageFailed

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf


class Killed(Exception):
    pass


def _kill_after(epochs_done: int):
    import keras

    class KillAfter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == epochs_done:
                raise Killed(f"killed after epoch {epochs_done}")

    return KillAfter()


def test_classifier_learns_and_resumes_after_kill(shapes_data, tmp_path):
    from edgekit.train import TrainConfig, train

    out = tmp_path / "run"
    cfg = TrainConfig(
        model="mobilenet_v2",
        data=shapes_data,
        epochs=4,
        batch=8,
        img=64,
        width=0.35,
        lr=1e-3,
        eager=True,
        warmup_epochs=0.5,
        val_fraction=0.25,
        out=out,
        progress="plain",
        tensorboard=False,
        crop_context=0.0,
    )
    with pytest.raises(StageFailed) as info:
        train(cfg, callbacks=[_kill_after(2)], echo=lambda s: None)
    # the failure names what finished, where it is, and how to go on
    assert isinstance(info.value.__cause__, Killed) and info.value.exit_code == 11
    assert str(info.value) == (
        "training mobilenet_v2 failed: Killed: killed after epoch 2; 2 of 4 epochs finished and "
        f"are kept in {out} (checkpoint, best.keras, last.keras, history.csv, curves.png); "
        f"continue with `edgekit train --out {out} --resume`"
    )
    assert info.value.kept == tuple(
        str(out / n)
        for n in ("checkpoint", "best.keras", "last.keras", "history.csv", "curves.png")
    )
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2
    steps = state["iterations"] // 2
    assert steps >= 3 and state["iterations"] == 2 * steps
    assert [r["epoch"] for r in state["history"]] == [1, 2]

    res = train(TrainConfig(**{**cfg.__dict__, "resume": True}), echo=lambda s: None)
    assert res.initial_epoch == 2
    assert [r["epoch"] for r in res.history] == [1, 2, 3, 4]  # no epoch repeated or lost
    assert res.iterations == 4 * steps  # the optimizer step count continued
    losses = [r["loss"] for r in res.history]
    # four small noisy epochs: the loss falls below the first epoch's at some point after it
    # (the last one alone can bounce back; the val-accuracy check below is the learning check)
    assert min(losses[1:]) < losses[0], losses
    acc = max(r["val_accuracy"] for r in res.history)
    assert acc > 1 / 3 + 0.15, res.history  # chance is 1/3
    for name in (
        "best.keras",
        "last.keras",
        "best.spec.json",
        "labels.txt",
        "history.csv",
        "curves.png",
    ):
        assert (out / name).is_file(), name
    assert (out / "labels.txt").read_text().split() == ["red", "green", "blue"]
    lines = (out / "history.csv").read_text().splitlines()
    assert len(lines) == 5 and lines[0].startswith("epoch,")


def test_ctrl_c_says_what_was_kept_and_how_to_resume(shapes_data, tmp_path):
    import keras

    from edgekit.train import TrainConfig, train
    from edgekit.train.fit import what_was_kept

    out = tmp_path / "run"
    assert what_was_kept(out, 2) == (f"no epoch finished, nothing to resume in {out}", ())

    class CtrlC(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    cfg = TrainConfig(
        model="mobilenet_v2", data=shapes_data, epochs=2, batch=8, img=32, width=0.35,
        eager=True, steps_per_epoch=1, val_fraction=0.25, out=out, progress="none",
        tensorboard=False, crop_context=0.0,
    )  # fmt: skip
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[CtrlC()], echo=said.append)
    assert said[-1].startswith(
        f"edgekit train: interrupted; 1 of 2 epochs finished and are kept in {out}"
    )
    assert said[-1].endswith(f"continue with `edgekit train --out {out} --resume`")
