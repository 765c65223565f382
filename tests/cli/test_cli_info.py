"""``edgekit info`` / ``edgekit.describe.describe_model`` on real models, including ones this
machine cannot run (Edge TPU-compiled) and an edgekit artifact with an embedded spec."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgekit.cli.main import cli
from edgekit.core.artifact import embed
from edgekit.core.types import ModelSpec
from edgekit.describe import describe_model, format_description
from edgekit.errors import ModelLoadError

SSD = ("models", "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite")


def test_ssd_description(shared):
    info = describe_model(shared(*SSD))
    assert info["task"] == "detect" and info["decoder"] == "ssd_postprocess"
    assert info["spec_source"] == "inferred"
    (inp,) = info["inputs"]
    assert inp["dtype"] == "uint8" and inp["shape"] == [1, 300, 300, 3]
    assert inp["quantization"] == {"scale": 0.0078125, "zero_point": 128}
    assert [o["shape"] for o in info["outputs"]] == [[1, 10, 4], [1, 10], [1, 10], [1]]
    assert info["ops"]["CONV_2D"] == 34 and info["ops"]["TFLite_Detection_PostProcess"] == 1
    assert info["op_count"] == sum(info["ops"].values())
    assert info["labels"]["first"][0] == "person" and info["labels"]["count"] >= 80
    assert info["edgetpu_ops"] is False and info["loadable"] is True
    tpu = info["edgetpu"]
    assert tpu["total_ops"] == 64 and tpu["first_unmappable"] is None
    assert info["backend"]["name"]
    text = format_description(info)
    assert "kind: detect (decoder ssd_postprocess" in text
    assert f"labels: {info['labels']['count']} ('person'" in text
    assert "edge tpu mapping: Edge-TPU-ready" in text


def test_flatbuffer_only_matches_loaded(shared):
    loaded = describe_model(shared(*SSD))
    offline = describe_model(shared(*SSD), load=False)
    assert offline["loadable"] is None
    assert (offline["task"], offline["decoder"]) == (loaded["task"], loaded["decoder"])
    assert offline["ops"] == loaded["ops"]


@pytest.mark.parametrize(
    ("name", "task", "decoder"),
    [
        ("movenet_single_pose_lightning_ptq_edgetpu.tflite", "pose", "movenet"),
        ("mobilenet_v1_0.25_128_quant_edgetpu.tflite", "classify", "classify"),
    ],
)
def test_edgetpu_model_is_described_without_a_tpu(shared, name, task, decoder):
    path = shared("models", name)
    info = describe_model(path)
    assert info["edgetpu_ops"] is True
    assert info["ops"]["edgetpu-custom-op"] == 1
    assert (info["task"], info["decoder"]) == (task, decoder)
    if info["loadable"] is False:  # no libedgetpu here: the reason names the file
        assert str(path) in info["load_error"] and "<model bytes>" not in info["load_error"]
    assert info["edgetpu"]["compiled"] is True


def test_embedded_spec_is_reported(shared, tmp_path):
    data = shared(*SSD).read_bytes()
    spec = ModelSpec(
        task="detect",
        decoder="ssd_postprocess",
        input_size=(300, 300),
        normalization=(127.5, 127.5),
        labels=("a", "b", "c"),
        name="my_ssd",
        version="1.2",
    )
    path = tmp_path / "artifact.tflite"
    path.write_bytes(embed(data, spec))
    info = describe_model(path)
    assert info["spec_source"] == "embedded"
    assert info["spec"]["name"] == "my_ssd" and info["spec"]["version"] == "1.2"
    assert info["labels"] == {"count": 3, "first": ["a", "b", "c"], "source": "edgekit spec"}
    assert "edgekit_spec.json" in info["embedded_files"]


def test_cli_json_and_text(shared):
    path = shared("models", "posenet_mobilenet_v1_075_481_641_quant.tflite")
    result = CliRunner().invoke(cli, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["decoder"] == "posenet" and len(doc["outputs"]) == 3
    text = CliRunner().invoke(cli, ["info", str(path)]).output
    assert "kind: pose (decoder posenet" in text and "CONV_2D x18" in text


def test_cli_edgetpu_model_in_a_subprocess(shared):
    path = shared("models", "movenet_single_pose_lightning_ptq_edgetpu.tflite")
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "edge tpu ops: yes" in proc.stdout and "kind: pose" in proc.stdout


def test_truncated_model_raises_model_load_error(shared, tmp_path):
    data = shared(*SSD).read_bytes()
    path = tmp_path / "half.tflite"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=r"half\.tflite"):
        describe_model(path)
