"""The regression corpus through the CLI: a small model of every recognised family at each input
quantization (tests/model_corpus.py) runs through ``edgekit detect|pose|classify`` and
``edgekit info``; truncated, mislabelled and odd-metadata variants end in one clean line (an
error with exit 3, or a warning) and never in a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from model_corpus import (
    COLOURS,
    DOMAINS,
    FAMILIES,
    box_iou,
    ultralytics_dict,
    with_ultralytics_metadata,
)
from test_bad_inputs import assert_one_line_error

from edgekit.cli.main import main
from edgekit.core.artifact import embed
from edgekit.core.types import ModelSpec

pytestmark = pytest.mark.tf

RESULTS = {"detect": "detections", "pose": "poses", "classify": "classes"}
DECODERS = {
    "yolo": "yolo",
    "classify": "classify",
    "ssd": "ssd_postprocess",
    "movenet": "movenet",
    "posenet": "posenet",
}
CASES = [(f, q) for f, (_, _, _, quants) in FAMILIES.items() for q in quants]


def run(corpus, task, model, tmp_path, capsys, *extra):
    out = tmp_path / f"{model.stem}.jsonl"
    source = ["--source", str(corpus.scenes_dir()), "--no-display", "--quiet"]
    code = main([task, "--model", str(model), *source, "--jsonl", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 0, err
    return [json.loads(line) for line in out.read_text().splitlines()], err


def info(path, capsys, *extra) -> str:
    assert main(["info", str(path), *extra]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(("family", "quant"), CASES)
def test_every_corpus_model_runs_through_the_cli(corpus, family, quant, tmp_path, capsys):
    task = FAMILIES[family][0]
    path = corpus.path(family, quant)
    rows, err = run(corpus, task, path, tmp_path, capsys)
    assert len(rows) == 3 and "Traceback" not in err
    key = RESULTS[task]
    if family != "posenet":  # the colour scenes give every other family something to report
        assert sum(len(r[key]) for r in rows) > 0
    described = json.loads(info(path, capsys, "--json"))
    assert (described["task"], described["decoder"]) == (task, DECODERS[family])
    assert tuple(described["spec"]["normalization"]) == DOMAINS[family]
    assert described["decode_error"] is None and described["warnings"] == []


def test_ssd_raw_with_an_edgekit_spec_runs(corpus, tmp_path, capsys):
    rows, _ = run(corpus, "detect", corpus.ssd_raw(), tmp_path, capsys)
    labels = {d["label"] for r in rows for d in r["detections"]}
    assert labels and labels <= set(COLOURS)
    assert "decoder ssd_raw, spec embedded" in info(corpus.ssd_raw(), capsys)


@pytest.mark.parametrize("family", ["yolo", "ssd"])
def test_int8_detections_through_the_cli_match_the_float_twin(corpus, family, tmp_path, capsys):
    ref, _ = run(corpus, "detect", corpus.path(family, "float"), tmp_path, capsys, "--score", "0.4")
    got, _ = run(
        corpus, "detect", corpus.path(family, "i8_odd"), tmp_path, capsys, "--score", "0.4"
    )
    compared = 0
    for a, b in zip(ref, got, strict=True):
        for d in (x for x in a["detections"] if x["score"] >= 0.6):
            compared += 1
            assert any(
                o["class_id"] == d["class_id"] and box_iou(o["box"], d["box"]) >= 0.7
                for o in b["detections"]
            ), d
    assert compared >= 5


def test_ultralytics_metadata_names_the_classes(corpus, tmp_path, capsys):
    data = with_ultralytics_metadata(
        corpus.path("yolo", "i8_odd").read_bytes(), ultralytics_dict(COLOURS, 64)
    )
    path = corpus.variant("ultralytics_yolo.tflite", data)
    text = info(path, capsys)
    assert "about: Ultralytics YOLOv8n model trained on coco.yaml (Ultralytics metadata)" in text
    assert "author Ultralytics, version 8.1.0, date 2024-01-01T00:00:00, task detect" in text
    assert "stride 32, imgsz 64x64" in text
    assert "licence: AGPL-3.0 License (https://ultralytics.com/license)" in text
    assert "labels: 3 ('red', 'green', 'blue') - Ultralytics metadata (metadata.json)" in text
    assert "warning" not in text
    rows, _ = run(corpus, "detect", path, tmp_path, capsys)
    assert {d["label"] for r in rows for d in r["detections"]} <= set(COLOURS)


def test_an_80_class_yolo_without_labels_gets_coco_names(corpus, tmp_path, capsys):
    text = info(corpus.yolo80(), capsys)
    assert (
        "labels: 80 ('person', 'bicycle', 'car', 'motorcycle', 'airplane', ...) - assumed COCO-80"
        in text
    )
    rows, _ = run(corpus, "detect", corpus.yolo80(), tmp_path, capsys)
    labels = {d["label"] for r in rows for d in r["detections"]}
    assert labels and labels <= set(_coco())
    python_literal = with_ultralytics_metadata(
        corpus.yolo80().read_bytes(), str(ultralytics_dict(_coco(), 64)), "temp_meta.txt"
    )
    text = info(corpus.variant("yolo80_ultralytics.tflite", python_literal), capsys)
    assert "- Ultralytics metadata (temp_meta.txt)" in text and "assumed" not in text


def _coco() -> tuple[str, ...]:
    from edgekit.core.types import COCO80_NAMES

    return COCO80_NAMES


# --- broken, mislabelled and odd models, as a user runs them (subprocess) ----------------------


def edgekit(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.parametrize("command", ["detect", "info"])
def test_a_truncated_corpus_model_is_one_line_exit_3(corpus, command, tmp_path):
    data = corpus.path("yolo", "i8_odd").read_bytes()
    path = corpus.variant("truncated_yolo.tflite", data[: len(data) // 2])
    args = [command, path] if command == "info" else [command, "--model", path, "--camera"]
    assert_one_line_error(args, 3, mentions=str(path))


def test_a_spec_that_lies_about_the_decoder_is_one_line_exit_3(corpus, tmp_path):
    flatbuffer = corpus.path("classify", "float").read_bytes()
    spec = ModelSpec(task="pose", decoder="movenet", input_size=(32, 32), normalization=(0, 1))
    path = corpus.variant("classifier_claiming_movenet.tflite", embed(flatbuffer, spec))
    line = assert_one_line_error(
        ["pose", "--model", path, "--source", corpus.scenes_dir(), "--no-display"], 3
    )
    assert line.startswith(f"edgekit: error: {path}: cannot decode output 0 ")
    assert "[1, 4] float32 with the movenet decoder: MoveNet output must be" in line
    proc = edgekit("info", path)
    assert proc.returncode == 0 and "decodes a blank frame: no - " in proc.stdout


def test_an_ultralytics_pose_head_is_refused_by_name(corpus):
    data = with_ultralytics_metadata(
        corpus.path("yolo", "float").read_bytes(), ultralytics_dict(["person"], 64, task="pose")
    )
    path = corpus.variant("ultralytics_pose.tflite", data)
    line = assert_one_line_error(["detect", "--model", path, "--camera", "--no-display"], 3)
    assert "an Ultralytics pose model" in line


@pytest.mark.parametrize(
    ("metadata", "warning"),
    [
        ("{'names': {0: 'red'}, 'task': 'detect', oops", "'metadata.json' ignored: not a JSON"),
        (ultralytics_dict(COLOURS[:2], 64), "2 labels for 3 output classes"),
    ],
    ids=["garbage", "too-few-names"],
)
def test_odd_metadata_is_one_warning_line(corpus, metadata, warning, tmp_path):
    data = with_ultralytics_metadata(corpus.path("yolo", "u8_odd").read_bytes(), metadata)
    path = corpus.variant("odd_metadata.tflite", data)
    out = tmp_path / "o.jsonl"
    args = ["--source", corpus.scenes_dir(), "--no-display", "--quiet", "--jsonl", out]
    proc = edgekit("detect", "--model", path, *args)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if warning in line]
    assert len(warnings) == 1 and warnings[0].startswith(f"edgekit: warning: {path}: ")
    assert len(out.read_text().splitlines()) == 3
    proc = edgekit("info", path)
    said = warnings[0].removeprefix(f"edgekit: warning: {path}: ")
    assert proc.returncode == 0 and f"warning: {said}" in proc.stdout
    assert warning not in proc.stderr  # info reports it once, in its description
