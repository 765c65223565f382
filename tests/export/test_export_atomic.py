"""A killed export never leaves a partial model, nor a stray temp file, at the target."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from edgekit.core.artifact import atomic_write_bytes as write_atomic
from edgekit.core.artifact import read_embedded
from edgekit.core.types import ModelSpec
from edgekit.export.metadata import write_artifact

SPEC = ModelSpec(task="classify", decoder="classify", input_size=(8, 8), labels=("a", "b"))


def _run_child(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_write_artifact_round_trip(tmp_path):
    path = write_artifact(tmp_path / "m.tflite", b"\x00" * 64, SPEC)
    back = read_embedded(path.read_bytes())
    assert back.spec.decoder == "classify" and back.labels == ("a", "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]


@pytest.mark.parametrize("existing", [False, True])
def test_killed_mid_write_leaves_old_file_or_nothing(tmp_path, existing):
    target = tmp_path / "out" / "model.tflite"
    if existing:
        target.parent.mkdir()
        target.write_bytes(b"old model")
    # The child dies by SIGKILL after the bytes are written but before they are committed.
    proc = _run_child(
        f"""
        import os, signal
        from edgekit.core.types import ModelSpec
        from edgekit.export import metadata

        def die(fd):
            os.kill(os.getpid(), signal.SIGKILL)

        os.fsync = die  # the os module is shared: every writer dies at its fsync
        spec = ModelSpec(task="classify", decoder="classify", input_size=(8, 8))
        metadata.write_artifact({str(target)!r}, b"\\x01" * 5_000_000, spec)
        """,
        tmp_path,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    names = sorted(p.name for p in target.parent.iterdir()) if target.parent.exists() else []
    if existing:
        assert names == ["model.tflite"] and target.read_bytes() == b"old model"
    else:
        assert names == []


def test_write_atomic_replaces(tmp_path):
    write_atomic(tmp_path / "x.bin", b"one")
    write_atomic(tmp_path / "x.bin", b"two")
    assert (tmp_path / "x.bin").read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


@pytest.mark.tf
def test_sigkill_during_conversion_leaves_nothing(tmp_path):
    pytest.importorskip("tensorflow")
    out = tmp_path / "models"
    out.mkdir()
    code = f"""
        import sys, time
        import keras
        from edgekit.core.types import ModelSpec
        from edgekit.export.tflite import ExportConfig, export_model

        inp = keras.Input((32, 32, 3))
        model = keras.Model(inp, keras.layers.Conv2D(4, 3)(inp))
        spec = ModelSpec(task="classify", decoder="classify", input_size=(32, 32))

        def progress(done, total):
            print("calibrating", done, flush=True)
            time.sleep(0.02)

        export_model(model, spec, ExportConfig(format="int8", calib_samples=500, out={str(out / "m.tflite")!r}), progress=progress)
        print("finished", flush=True)
        """
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = child.stdout.readline()
        assert line.startswith("calibrating"), line
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert list(out.iterdir()) == []
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))
    assert os.listdir(out) == []
