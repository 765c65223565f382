"""The recipe: parsing, YAML, the CLI, and the whole pipeline end to end on a tiny model."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgekit.cli.main import cli, main
from edgekit.compress.recipes import CompressConfig, Stage, load_recipe, parse_recipe
from edgekit.errors import ConfigError, UsageError


def test_parse_recipe():
    assert parse_recipe("distill, prune:0.5,qat") == (
        Stage("distill"), Stage("prune", 0.5), Stage("qat"),
    )  # fmt: skip
    assert parse_recipe(["structured:0.25", "ptq"]) == (Stage("structured", 0.25), Stage("int8"))
    assert parse_recipe("prune")[0].arg == 0.5
    assert parse_recipe("finetune,int8") == (Stage("finetune"), Stage("int8"))
    assert parse_recipe("int8,prune:0.3,qat")[1] == Stage("prune", 0.3)  # int8 only measures
    for bad in ("", "shrink", "prune:2", "prune:x", "qat:1", "qat,int8", "qat,prune:0.5"):
        with pytest.raises(UsageError):
            parse_recipe(bad)


def test_config_checks(tmp_path):
    with pytest.raises(UsageError, match="teacher"):
        CompressConfig(student="mobilenet_v2", data=tmp_path, stages=parse_recipe("distill"))
    cfg = CompressConfig(student="mobilenet_v2", data=str(tmp_path), stages="train,int8")
    assert cfg.stages == (Stage("train"), Stage("int8")) and cfg.data == tmp_path


def test_soft_temperature_defaults_by_task(tmp_path):
    cfg = CompressConfig(student="mobilenet_v2", data=tmp_path, stages="train")
    # a classifier's softmax is softened; a detector's sigmoid scores are not (T > 1 would lift
    # every background anchor towards 0.5)
    assert cfg.soft_temperature(detector=False) == 4.0 and cfg.soft_temperature(True) == 1.0
    cfg = CompressConfig(student="mobilenet_v2", data=tmp_path, stages="train", temperature=2)
    assert cfg.soft_temperature(False) == cfg.soft_temperature(True) == 2.0


def test_yaml_recipe(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("stages: [train, 'prune:0.5']\nepochs: 3\nstudent: mobilenet_v2\n")
    cfg = load_recipe(p, data=tmp_path, epochs=None)
    assert cfg.epochs == 3 and cfg.stages[1] == Stage("prune", 0.5)
    p.write_text("stages: [train]\nbogus: 1\n")
    with pytest.raises(ConfigError, match="bogus"):
        load_recipe(p)
    p.write_text("epochs: 3\n")
    with pytest.raises(ConfigError, match="stages"):
        load_recipe(p)


def test_cli_help_and_errors(tmp_path, capsys):
    runner = CliRunner()
    res = runner.invoke(cli, ["compress", "--help"])
    assert res.exit_code == 0 and "distill,prune:0.5" in res.output
    args = ["compress", "--student", "mobilenet_v2", "--data", str(tmp_path), "--recipe", "shrink"]
    assert main(args) == UsageError.exit_code
    assert "unknown recipe stage 'shrink'" in capsys.readouterr().err
    assert main(["compress", "--recipe", "train"]) == UsageError.exit_code
    assert "--student is required" in capsys.readouterr().err


def _run(tmp_path, image_folder, recipe, **kw):
    pytest.importorskip("tensorflow")
    pytest.importorskip("tensorflow_model_optimization")
    from edgekit.compress.recipes import run_recipe

    cfg = CompressConfig(
        student="mobilenet_v2", data=image_folder, stages=recipe, out=tmp_path / "out",
        epochs=1, input_size=32, width=0.35, batch_size=16, calib_samples=4, bench_runs=3, **kw,
    )  # fmt: skip
    logs: list[str] = []
    return cfg, run_recipe(cfg, log=logs.append), logs


def test_recipe_end_to_end_train_prune_int8(tmp_path, image_folder):
    cfg, results, logs = _run(tmp_path, image_folder, "train,finetune,prune:0.5,int8")
    assert [r.stage for r in results] == ["train", "finetune", "prune:0.5", "int8"]
    train, finetuned, pruned, q = results
    assert finetuned.details == {"epochs": cfg.finetune_epochs or cfg.epochs}
    assert finetuned.sparsity < 0.01 and finetuned.params == train.params
    assert pruned.sparsity == pytest.approx(0.5, abs=0.03) and train.sparsity < 0.01
    assert pruned.gzip_bytes < train.gzip_bytes
    assert q.format == "int8" and q.size_bytes * 2.4 < pruned.size_bytes
    assert "quant_error" in q.details and q.details["quant_error"]["images"] > 0
    assert len(q.details["layer_error"]) > 30  # float vs int8 per layer, pruned model
    for r in results:
        assert 0.0 <= r.accuracy <= 1.0 and r.latency_ms > 0 and r.params > 0
        assert (cfg.out / r.artifact).is_file()
    assert sorted(p.name for p in cfg.out.glob("*.keras")) == [
        "00_train.keras",
        "01_finetune.keras",
        "02_prune_0.5.keras",
    ]
    report = json.loads((cfg.out / "report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == ["train", "finetune", "prune:0.5", "int8"]
    md = (cfg.out / "report.md").read_text()
    assert "largest per-layer error" in md
    assert "| prune:0.5 |" in md and (cfg.out / "report.png").stat().st_size > 1000
    assert len(logs) >= 6


@pytest.mark.slow
def test_recipe_end_to_end_distill_structured_qat(tmp_path, image_folder):
    pytest.importorskip("tensorflow")
    import keras

    from edgekit.compress.quantize import post_training
    from edgekit.zoo.registry import create_model, get_entry

    keras.utils.set_random_seed(1)
    t = create_model("mobilenet_v2", num_classes=3, input_size=48, width=0.5)
    teacher = post_training(
        t, get_entry("mobilenet_v2").spec(t, ["blue", "green", "red"]), tmp_path / "teacher.tflite",
        format="float32",
    ).path  # fmt: skip
    _, results, _ = _run(tmp_path, image_folder, "distill,structured:0.5,qat", teacher=str(teacher))
    distill, structured, qat = results
    assert distill.details["cache_misses"] > 0 and "probe" not in distill.details
    assert structured.params < distill.params
    assert qat.format == "int8-qat" and qat.size_bytes * 2.4 < structured.size_bytes
