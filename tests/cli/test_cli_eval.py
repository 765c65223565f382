"""``edgekit eval`` end to end: the third-party SSD on coco128, outputs, one-line errors."""

from __future__ import annotations

import json

import pytest

from edgekit.cli.main import main
from edgekit.data import read_dataset, split_dataset
from edgekit.data.load import load_dataset as load_eval_dataset

SSD = "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"


def test_ssd_on_ten_coco128_images(shared, tmp_path, capsys):
    model = shared("models", SSD)
    data = shared("coco128")
    out_json, out_png = tmp_path / "r.json", tmp_path / "pr.png"
    argv = [str(model), "--data", str(data), "--all", "--max-images", "10"]
    code = main(["eval", *argv, "--json", str(out_json), "--plot", str(out_png)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "mAP" in printed and "person" in printed and "at most 10 detections" in printed
    result = json.loads(out_json.read_text())
    assert {"model", "data", "images", "task", "metrics", "per_class"} <= set(result)
    assert result["images"] == 10 and result["task"] == "detect" and result["class_map"] == "name"
    m = result["metrics"]
    assert 0.05 < m["mAP"] <= m["AP50"] <= 1.0
    assert 0.0 <= m["AP75"] <= m["AP50"]
    assert (
        result["per_class"]["person"]["gt"] > 0
        and 0.0 < result["per_class"]["person"]["AP50"] <= 1.0
    )
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_val_split_is_the_data_split(shared):
    data = shared("coco128")
    ds = load_eval_dataset(data, split="val", val_fraction=0.2, seed=0)
    _, val = split_dataset(read_dataset(data), 0.2, 0)
    assert [r.path for r in ds.images] == [r.path for r in val.images] and len(ds) == 20


def test_missing_data_path_is_a_one_line_error(shared, tmp_path, capsys):
    code = main(["eval", str(shared("models", SSD)), "--data", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 6 and err.count("\n") == 1 and "nope" in err and "no such" in err


def test_empty_dataset_is_refused(shared, tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    code = main(["eval", str(shared("models", SSD)), "--data", str(tmp_path), "--all"])
    err = capsys.readouterr().err
    assert code == 6 and err.startswith("edgekit: error:") and err.count("\n") == 1


def test_task_mismatch_is_refused(shared, tmp_path, capsys):
    import shutil

    (tmp_path / "cat").mkdir()
    shutil.copy(shared("images", "grace_hopper.bmp"), tmp_path / "cat" / "a.bmp")
    code = main(["eval", str(shared("models", SSD)), "--data", str(tmp_path), "--all"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot evaluate a detector" in err
    code = main(
        [
            "eval",
            str(shared("models", "movenet_single_pose_lightning_ptq.tflite")),
            "--data",
            str(shared("coco128")),
            "--all",
            "--max-images",
            "2",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "keypoint" in err


def test_missing_model_is_refused(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    code = main(["eval", str(tmp_path / "m.tflite"), "--data", str(tmp_path)])
    assert code == 3 and "not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "bad", [["--split", "test"], ["--class-map", "x"], ["--max-images", "0"], ["--max-dets", "0"]]
)
def test_bad_options(bad, tmp_path, capsys):
    assert main(["eval", "m.tflite", "--data", str(tmp_path), *bad]) == 2


def test_max_dets_caps_detections_per_image(shared):
    from edgekit.eval import EvalConfig, evaluate_model

    cfg = EvalConfig(
        model=shared("models", SSD),
        data=shared("coco128"),
        split="all",
        max_images=2,
        max_detections=3,
    )
    result = evaluate_model(cfg)
    assert result.metrics["detections"] == 6.0
