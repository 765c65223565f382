"""Bad inputs end in ONE line on stderr starting with "edgekit: error:", a non-zero exit code and
no traceback. The CLI runs in a subprocess, exactly as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from shared_data import SHARED_DATA

SSD = SHARED_DATA / "models" / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"


def _tiny_tflite() -> bytes:
    """A small valid float classifier made with TensorFlow (only when shared data is absent)."""
    pytest.importorskip("tensorflow")
    import keras
    import tensorflow as tf

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=2)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    """A real model's bytes: the shared SSD, else a tiny TF-made one (skip without either)."""
    if SSD.is_file():
        return SSD.read_bytes()
    return _tiny_tflite()


@pytest.fixture(scope="module")
def task() -> str:
    """The command that runs ``model``: the model is checked before the source is opened, so
    source errors show only with a command of the model's own task."""
    return "detect" if SSD.is_file() else "classify"


@pytest.fixture(scope="module")
def model(model_bytes, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.tflite"
    path.write_bytes(model_bytes)
    return path


def assert_one_line_error(args: list, code: int | None = None, *, mentions: str = "") -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    stderr = proc.stderr
    assert "Traceback" not in stderr, stderr
    assert proc.returncode != 0, stderr
    if code is not None:
        assert proc.returncode == code, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("edgekit: error:"), stderr
    assert mentions in lines[0], stderr
    return lines[0]


@pytest.mark.parametrize("command", ["detect", "info", "bench"])
def test_missing_model_file(command, tmp_path):
    missing = tmp_path / "nope.tflite"
    args = (
        ["detect", "--model", missing, "--no-display"]
        if command == "detect"
        else [command, missing]
    )
    line = assert_one_line_error(args, 3, mentions=str(missing))
    assert "not found" in line


@pytest.mark.parametrize("command", ["detect", "info", "bench"])
def test_truncated_model(command, model_bytes, tmp_path):
    half = tmp_path / "half.tflite"
    half.write_bytes(model_bytes[: len(model_bytes) // 2])
    args = ["detect", "--model", half, "--no-display"] if command == "detect" else [command, half]
    assert_one_line_error(args, 3)


@pytest.mark.parametrize("command", ["detect", "info", "bench"])
def test_not_a_model(command, tmp_path):
    text = tmp_path / "notes.tflite"
    text.write_text("these are my notes, not a model\n" * 40)
    args = ["detect", "--model", text, "--no-display"] if command == "detect" else [command, text]
    line = assert_one_line_error(args, 3, mentions=str(text))
    assert "not a TFLite model" in line


def test_unreadable_video(model, task, tmp_path):
    fake = tmp_path / "clip.mp4"
    fake.write_text("this is a text file with a video name\n")
    line = assert_one_line_error([task, "--model", model, "--source", fake, "--no-display"], 4)
    assert str(fake) in line


def test_camera_that_does_not_exist(model, task):
    line = assert_one_line_error([task, "--model", model, "--camera", "7", "--no-display"], 4)
    assert "camera 7" in line


def test_source_path_that_does_not_exist(model, task, tmp_path):
    missing = tmp_path / "missing" / "clip.mp4"
    assert_one_line_error(
        [task, "--model", model, "--source", missing, "--no-display"], 4, mentions=str(missing)
    )


def test_the_model_is_checked_before_the_camera_opens(tmp_path):
    missing = tmp_path / "missing.tflite"
    line = assert_one_line_error(["detect", "--model", missing, "--camera", "--no-display"], 3)
    assert str(missing) in line and "camera" not in line


def test_a_model_of_another_task_is_reported_before_the_source(model, tmp_path):
    missing = tmp_path / "missing" / "clip.mp4"
    line = assert_one_line_error(["pose", "--model", model, "--source", missing, "--no-display"], 2)
    assert "not a pose model" in line


def test_no_model_and_no_default():
    from edgekit.app import ASSETS, DEFAULT_MODEL_NAMES

    if any((ASSETS / name).is_file() for name in DEFAULT_MODEL_NAMES["classify"]):
        pytest.skip("a default classify model is packaged")
    line = assert_one_line_error(["classify", "--no-display", "--max-frames", "1"], 2)
    assert "--model" in line
