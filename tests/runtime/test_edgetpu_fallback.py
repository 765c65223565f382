"""Edge TPU delegate failing at load: CPU fallback to the sibling model when allowed."""

from __future__ import annotations

import logging
import shutil

import pytest

from edgekit.app import RunConfig
from edgekit.errors import EdgeTPUUnavailable
from edgekit.runtime.model import Model

TPU = "movenet_single_pose_lightning_ptq_edgetpu.tflite"
CPU = "movenet_single_pose_lightning_ptq.tflite"


def no_tpu(library: str):
    raise OSError(f"{library}: no Edge TPU plugged in")


def test_strict_by_default(shared):
    with pytest.raises(EdgeTPUUnavailable, match="no Edge TPU plugged in"):
        Model.load(shared("models", TPU), delegate_loader=no_tpu)


def test_fallback_loads_the_cpu_sibling_with_one_warning(shared, caplog):
    with caplog.at_level(logging.WARNING, logger="edgekit.runtime.model"):
        model = Model.load(shared("models", TPU), delegate_loader=no_tpu, edgetpu_fallback=True)
    assert str(model.path).endswith(CPU)
    assert model.backend.delegate is None
    assert model.spec.decoder == "movenet"
    lines = [r.getMessage() for r in caplog.records if r.name == "edgekit.runtime.model"]
    assert len(lines) == 1
    assert TPU in lines[0] and "no Edge TPU plugged in" in lines[0] and CPU in lines[0]
    assert "\n" not in lines[0]


def test_fallback_without_a_cpu_sibling_still_raises(shared, tmp_path):
    lonely = tmp_path / TPU
    shutil.copyfile(shared("models", TPU), lonely)
    with pytest.raises(EdgeTPUUnavailable):
        Model.load(lonely, delegate_loader=no_tpu, edgetpu_fallback=True)


def test_the_app_allows_fallback_by_default():
    assert RunConfig(task="pose").edgetpu_fallback is True


def test_the_app_runs_the_cpu_sibling_when_the_tpu_is_missing(shared, monkeypatch, caplog):
    import edgekit.runtime.model as model_mod
    from edgekit.app import run_app

    load = model_mod.Model.load.__func__

    def load_without_tpu(cls, path, **kw):
        kw.setdefault("delegate_loader", no_tpu)
        return load(cls, path, **kw)

    monkeypatch.setattr(model_mod.Model, "load", classmethod(load_without_tpu))
    config = RunConfig(
        task="pose", model=shared("models", TPU), max_frames=2, display=False, console=False
    )
    with caplog.at_level(logging.WARNING, logger="edgekit.runtime.model"):
        stats = run_app(config)
    assert stats.frames == 2
    assert any(CPU in r.getMessage() for r in caplog.records)
