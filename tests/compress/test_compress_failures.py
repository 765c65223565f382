"""A compression stage that fails: the run exits non-zero naming the stage and the error, the
finished stages' artifacts and the report stay (the report records the failure), and the
message says where they are. The guard alone (no TensorFlow), then a real recipe whose
float16 export hits a full disk (a fake at the export boundary)."""

from __future__ import annotations

import errno
import json
import os

import pytest

from edgekit.compress.recipes import CompressConfig, StageResult
from edgekit.compress.recipes.measure import stage_guard
from edgekit.errors import DatasetError, StageFailed


def result(stage: str, artifact: str) -> StageResult:
    return StageResult(
        stage=stage, artifact=artifact, format="float32", accuracy=0.5, size_bytes=1000,
        gzip_bytes=900, params=10, sparsity=0.0, latency_ms=1.0, seconds=1.0,
    )  # fmt: skip


@pytest.fixture
def config(tmp_path):
    return CompressConfig(student="mobilenet_v2", data=tmp_path, stages="train,int8",
                          out=tmp_path / "out")  # fmt: skip


def test_a_failing_stage_names_itself_and_what_was_kept(config):
    config.out.mkdir()
    (config.out / "01_train.tflite").write_bytes(b"model")
    done = [result("train", "01_train.tflite")]
    logs: list[str] = []
    with pytest.raises(StageFailed) as info, stage_guard(config, "[2/2] int8", done, logs.append):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    err = info.value
    assert err.exit_code == 11 and err.stage == "[2/2] int8"
    assert isinstance(err.__cause__, OSError)
    assert str(err) == (
        "compress stage [2/2] int8 failed: OSError: [Errno 28] No space left on device; "
        f"finished and kept in {config.out}: train (01_train.tflite); report "
        f"{config.out / 'report.md'}"
    )
    assert str(config.out / "01_train.tflite") in err.kept
    assert str(config.out / "report.md") in err.kept
    report = json.loads((config.out / "report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == ["train"]
    assert report["failed"]["stage"] == "[2/2] int8"
    assert "No space left on device" in report["failed"]["error"]
    md = (config.out / "report.md").read_text()
    assert "**Stage [2/2] int8 failed**: OSError: [Errno 28] No space left on device" in md


def test_a_measured_teacher_is_not_said_to_be_kept(config):
    config.out.mkdir()
    (config.out / "01_distill.tflite").write_bytes(b"model")
    done = [result("teacher", "ssd.tflite"), result("distill", "01_distill.tflite")]
    with pytest.raises(StageFailed) as info, stage_guard(config, "[2/2] int8", done, print):
        raise RuntimeError("boom")
    assert "kept in" in str(info.value)
    assert "teacher (measured), distill (01_distill.tflite)" in str(info.value)
    assert str(config.out / "ssd.tflite") not in info.value.kept


def test_the_cause_keeps_its_exit_code_and_nothing_finished_is_said(config):
    with (
        pytest.raises(StageFailed, match=r"no stage finished; see .*out$") as info,
        stage_guard(config, "teacher", [], print),
    ):
        raise DatasetError("frames.avi: cannot read frame 12")
    assert info.value.exit_code == DatasetError.exit_code
    assert "compress stage teacher failed: frames.avi: cannot read frame 12" in str(info.value)


def test_ctrl_c_in_a_stage_says_what_was_kept_and_stops(config):
    logs: list[str] = []
    with pytest.raises(KeyboardInterrupt), stage_guard(config, "[1/2] train", [], logs.append):
        raise KeyboardInterrupt
    assert logs == [
        f"edgekit compress: interrupted in stage [1/2] train; no stage finished; see {config.out}"
    ]


@pytest.mark.tf
def test_recipe_whose_export_hits_a_full_disk(tmp_path, image_folder, monkeypatch, capsys):
    """train then float16; the float16 export fails with ENOSPC: exit 10, the trained stage's
    .tflite, .keras and the report stay."""
    pytest.importorskip("tensorflow")
    from edgekit.cli.main import main
    from edgekit.compress import quantize

    real = quantize.post_training

    def export(model, spec, out, *, format="int8", **kw):
        if format == "float16":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out))
        return real(model, spec, out, format=format, **kw)

    monkeypatch.setattr(quantize, "post_training", export)
    out = tmp_path / "out"
    code = main([
        "compress", "--student", "mobilenet_v2", "--data", str(image_folder), "--recipe",
        "train,float16", "--epochs", "1", "--input-size", "32", "--width", "0.35",
        "--batch-size", "16", "--bench-runs", "3", "--out", str(out),
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 11, err
    (line,) = [x for x in err.splitlines() if x.startswith("edgekit: error:")]
    assert line.startswith("edgekit: error: compress stage [2/2] float16 failed: OSError: ")
    assert "No space left on device" in line
    assert line.endswith(
        f"finished and kept in {out}: train (00_train.tflite); report {out / 'report.md'}"
    )
    assert (out / "00_train.tflite").stat().st_size > 1000
    assert (out / "00_train.keras").is_file()
    report = json.loads((out / "report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == ["train"]
    assert report["failed"]["stage"] == "[2/2] float16"
