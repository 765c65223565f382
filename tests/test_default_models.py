"""The shipped default models (edgekit/assets): self-describing int8 artifacts, found by
``edgekit detect|pose`` without ``--model``, accurate enough on real images; and the script that
reproduces them still runs end to end (``--quick``)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from shared_data import ROOT, shared_path

from edgekit.app import ASSETS, default_model
from edgekit.core.flatbuffer import read_tflite
from edgekit.runtime.model import Model

DETECT = ASSETS / "detect_default.tflite"
POSE = ASSETS / "pose_default.tflite"
MAX_BYTES = 5_000_000


def _edgekit(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.mark.parametrize("task, path", [("detect", DETECT), ("pose", POSE)])
def test_default_models_are_packaged_and_found(task, path):
    assert path.is_file(), f"{path} missing: run tools/train_default_models.py --stages ...,install"
    assert default_model(task) == path
    assert path.stat().st_size < MAX_BYTES
    card = ROOT / "models" / f"{task}_default.md"
    assert card.is_file() and path.name in card.read_text(encoding="utf-8")


def test_default_detector_is_full_int8_with_nms_and_spec():
    from edgekit.export.edgetpu import check_edgetpu

    m = Model.load(DETECT, threads=1)
    assert m.spec.task == "detect" and m.spec.decoder == "ssd_postprocess"
    assert m.spec.name == "edgekit_detect_default" and "person" in m.labels
    assert m.input_details[0]["dtype"] == np.uint8
    graph = read_tflite(DETECT.read_bytes())
    ops = {op.op for op in graph.main.operators}
    assert "TFLite_Detection_PostProcess" in ops
    report = check_edgetpu(graph)
    assert report["edgetpu_ready"] and report["first_unmappable"] is None


def test_default_pose_model_is_full_int8_with_spec():
    m = Model.load(POSE, threads=1)
    assert m.spec.task == "pose" and m.spec.decoder == "movenet"
    assert m.spec.name == "edgekit_pose_default" and len(m.spec.keypoint_names) == 17
    assert m.input_details[0]["dtype"] == np.uint8
    assert max(m.input_size) <= 192


def test_default_detector_finds_the_person_in_the_sample_photo():
    from edgekit.io.sources import sample_images

    photos = [p for p in sample_images() if p.name == "grace_hopper.jpg"]
    if not photos:
        pytest.skip("matplotlib sample photo not installed")
    import cv2

    rgb = cv2.cvtColor(cv2.imread(str(photos[0])), cv2.COLOR_BGR2RGB)
    pred = Model.load(DETECT, threads=1).predict(rgb, score_threshold=0.3)
    people = [d for d in pred.detections if d.label == "person"]
    assert people, pred.detections
    x0, y0, x1, y1 = people[0].box
    assert (x1 - x0) * (y1 - y0) > 0.2  # the portrait fills much of the frame


@pytest.mark.shared
def test_default_pose_model_agrees_with_movenet_reference_on_squat():
    import csv

    import cv2

    img = shared_path("images", "squat.bmp")
    ref = shared_path("models", "movenet_single_pose_lightning_ptq_reference.csv")
    rgb = cv2.cvtColor(cv2.imread(str(img)), cv2.COLOR_BGR2RGB)
    rows = list(csv.DictReader(ref.read_text().splitlines()))
    ref_xy = np.array([[float(r["keypoint_x"]), float(r["keypoint_y"])] for r in rows])
    ref_score = np.array([float(r["keypoint_score"]) for r in rows])
    assert ref_xy.shape == (17, 2)  # normalized, MoveNet on a plain 192x192 resize
    pose = Model.load(POSE, threads=1).predict(rgb, score_threshold=0.0).poses[0]
    pred = np.array([[k.x, k.y] for k in pose.keypoints])
    sure = ref_score >= 0.3
    near = np.linalg.norm(pred[sure] - ref_xy[sure], axis=1) <= 0.1
    assert near.mean() >= 0.5, (near, pred, ref_xy)


def test_edgekit_detect_with_no_arguments_runs_the_default_detector(tmp_path):
    proc = _edgekit("detect")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert str(DETECT) in out and "source sample" in out
    assert "detections" in out
    for stage in ("preprocess", "invoke", "postprocess", "total"):
        assert stage in out
    jsonl = tmp_path / "out.jsonl"
    assert _edgekit("detect", "--jsonl", str(jsonl), "--max-frames", "1").returncode == 0
    first = json.loads(jsonl.read_text().splitlines()[0])
    assert "person" in json.dumps(first)  # the first sample photo is Grace Hopper's portrait


# Not slow-marked on purpose, so the script cannot rot: about 3 min on an idle 2-core machine
# (both teachers imported, five tiny compress runs, int8 exports, evaluation, the video check).
@pytest.mark.shared
@pytest.mark.tf
def test_reproduce_script_quick_mode(tmp_path):
    pytest.importorskip("tensorflow")
    data = shared_path()
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "train_default_models.py"),
            "--quick",
            "--data",
            str(data),
            "--out",
            str(tmp_path),
            "--stages",
            "data,import,detect,pose,zoo,evaluate,video,install",
            "--install-to",
            str(tmp_path / "assets"),
        ],
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["quick"] is True
    rows = report["rows"]
    assert set(rows) == {
        f"{t}/{w}" for t in ("detect", "pose") for w in ("teacher", "student", "zoo")
    }
    assert rows["detect/teacher"]["person_AP50"] > 0.3  # the teacher on the first valid photos
    # the pose reference of the held-back crops is the teacher's own output: 1.0 by construction
    assert rows["pose/teacher"]["PCK@0.1"] == pytest.approx(1.0)
    assert all(row["invoke_p50_ms"] > 0 for row in rows.values())
    assert set(report["targets"]) >= {"detect_AP50_ok (>= 0.9)", "pose_invoke_ok (<= 0.5)"}
    agreement = json.loads((tmp_path / "teachers" / "agreement.json").read_text())
    assert agreement["detect"]["task"]["detections_found"] >= 0.5
    video = json.loads((tmp_path / "video.json").read_text())
    assert video["frames"] >= 5 and 0 <= video["both"] <= video["teacher_frames"]
    for task in ("detect", "pose"):
        m = Model.load(tmp_path / "assets" / f"{task}_default.tflite", threads=1)
        assert m.spec.task == task and m.spec.name == f"edgekit_{task}_default"
    assert (tmp_path / "detect" / "report.md").is_file()

    # one default alone (--tasks): its finished stages are reused, only its rows are scored
    script = str(ROOT / "tools" / "train_default_models.py")
    again = subprocess.run(
        [
            sys.executable,
            script,
            "--quick",
            "--data",
            str(data),
            "--out",
            str(tmp_path),
            "--tasks",
            "pose",
            "--stages",
            "evaluate",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "compress:" not in again.stdout  # nothing retrained
    pose_only = json.loads((tmp_path / "report.json").read_text())
    assert set(pose_only["rows"]) == {f"pose/{w}" for w in ("teacher", "student", "zoo")}
    assert set(pose_only["targets"]) >= {"pose_invoke_ok (<= 0.5)"}
    assert not any(key.startswith("detect") for key in pose_only["targets"])
