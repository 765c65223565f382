"""`edgekit export`: a .keras checkpoint with its spec, calibration folder, labels; errors."""

from __future__ import annotations

import shutil

import pytest

from edgekit.cli.main import main
from edgekit.core.types import ModelSpec
from edgekit.io.sources import sample_images as sample_photos


def test_help_teaches(capsys):
    assert main(["export", "--help"]) == 0
    text = capsys.readouterr().out
    assert "Examples:" in text and "--calib" in text and "edgetpu" in text


def test_unknown_model_is_a_one_line_usage_error(capsys):
    code = main(["export", "no_such_model", "--out", "x.tflite"])
    err = capsys.readouterr().err
    assert code == 2 and "no_such_model" in err and len(err.strip().splitlines()) == 1


@pytest.mark.tf
def test_edgetpu_without_compiler_fails_before_converting(tmp_path, monkeypatch, capsys):
    keras = pytest.importorskip("keras")
    inp = keras.Input((16, 16, 3))
    model = keras.Model(inp, keras.layers.Conv2D(2, 3)(inp), name="tiny")
    path = tmp_path / "tiny.keras"
    model.save(path)
    path.with_suffix(".spec.json").write_text(
        ModelSpec(task="classify", decoder="classify", input_size=(16, 16)).to_json()
    )
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    code = main(["export", str(path), "--edgetpu", "--out", str(tmp_path / "t.tflite")])
    err = capsys.readouterr().err
    assert code == 9 and "edgetpu_compiler not found" in err and "apt" in err
    assert not (tmp_path / "t.tflite").exists()


@pytest.mark.tf
def test_export_keras_checkpoint_to_int8(tmp_path, capsys):
    keras = pytest.importorskip("keras")
    from edgekit.runtime.model import Model

    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x), name="tiny_cls")
    ckpt = tmp_path / "tiny_cls.keras"
    model.save(ckpt)
    spec = ModelSpec(
        task="classify", decoder="classify", input_size=(32, 32), normalization=(127.5, 127.5)
    )
    ckpt.with_suffix(".spec.json").write_text(spec.to_json())
    calib = tmp_path / "calib"
    calib.mkdir()
    for photo in sample_photos()[:2]:
        shutil.copy(photo, calib / photo.name)
    labels = tmp_path / "labels.txt"
    labels.write_text("apple\nbanana\ncherry\n")
    out = tmp_path / "tiny_int8.tflite"
    code = main(
        ["export", str(ckpt), "--format", "int8", "--calib", str(calib), "--calib-samples", "8",
         "--labels", str(labels), "--int8-io", "--out", str(out)]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0, text
    assert (
        f"wrote {out}" in text and "input int8 32x32" in text and "Edge TPU: Edge-TPU-ready" in text
    )
    loaded = Model.load(out)
    assert loaded.labels == ("apple", "banana", "cherry")
    assert (
        loaded.spec.input_dtype == "int8" and loaded.spec.decoder_params["export_format"] == "int8"
    )
