"""The detection recipe: a .tflite teacher labels images + video frames, a zoo SSDLite student
is distilled, thinned and quantized, every stage measured next to the teacher."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.compress.recipes import CompressConfig, run_recipe
from edgekit.errors import UsageError

TEACHER = Path(__file__).resolve().parents[2] / "edgekit" / "assets" / "detect_default.tflite"


def _people(root: Path, n: int = 12, size: int = 96, seed: int = 0) -> tuple[Path, Path]:
    """A YOLO dataset of one grey 'person' box per image, and a short MJPG video of the same."""
    import cv2

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir(parents=True)
    frames = []
    for i in range(n):
        img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
        w, h = int(rng.integers(size // 5, size // 3)), int(rng.integers(size // 3, size - 8))
        x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        img[y0 : y0 + h, x0 : x0 + w] = 140
        cv2.imwrite(str(root / "images" / f"{i:03d}.png"), img)
        box = ((x0 + w / 2) / size, (y0 + h / 2) / size, w / size, h / size)
        (root / "labels" / f"{i:03d}.txt").write_text("0 " + " ".join(f"{v:.5f}" for v in box))
        frames.append(img)
    (root / "data.yaml").write_text("path: .\ntrain: images\nval: images\nnames:\n  0: person\n")
    video = root / "clip.avi"
    out = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (size, size))
    for img in frames[:6]:
        out.write(img)
    out.release()
    return root / "data.yaml", video


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> tuple[Path, Path]:
    return _people(tmp_path_factory.mktemp("people"))


def _config(tmp_path: Path, people: tuple[Path, Path], stages: str, **kw) -> CompressConfig:
    data, video = people
    base = dict(
        student="ssdlite_mobilenet_v2", data=data, stages=stages, teacher=str(TEACHER),
        videos=(video,), every_n=2, classes=("person",), input_size=96, width=0.35, epochs=1,
        steps_per_epoch=1, eager=True, batch_size=4, bench_runs=3, calib_samples=4,
        val_fraction=0.25, out=tmp_path / "out",
    )  # fmt: skip
    base.update(kw)
    return CompressConfig(**base)


@pytest.mark.parametrize(
    ("stages", "kw", "match"),
    [
        ("distill,prune:0.5", {}, "not supported for detectors"),
        ("distill,qat", {}, "not supported for detectors"),
        ("finetune,int8", {}, "untrained"),
        ("distill", {"classes": ("cat",)}, "cat"),
        ("distill", {"teacher": "teacher.keras"}, "SSD checkpoint with its spec"),
        ("distill", {"teacher": "teacher.onnx"}, "a .tflite or a .keras"),
    ],
)
def test_detection_recipe_refuses_what_it_cannot_do(tmp_path, people, stages, kw, match):
    with pytest.raises(UsageError, match=match):
        run_recipe(_config(tmp_path, people, stages, **kw), log=lambda m: None)


def test_missing_video_is_a_usage_error(tmp_path, people):
    with pytest.raises(UsageError, match="no such file"):
        _config(tmp_path, people, "distill", videos=(tmp_path / "none.avi",))


def test_detection_distill_structured_int8_next_to_the_teacher(tmp_path, people):
    pytest.importorskip("tensorflow")
    logs: list[str] = []
    cfg = _config(
        tmp_path, people, "distill,structured:0.5,int8", max_labelled=8, repeat_labelled=2,
        mosaic=0.5,
    )  # fmt: skip
    results = run_recipe(cfg, log=logs.append)
    assert [r.stage for r in results] == ["teacher", "distill", "structured:0.5", "int8"]
    teacher, distill, thin, q = results
    assert all(r.metric == "person AP50" for r in results)
    assert teacher.artifact == TEACHER.name and teacher.params == 0
    assert thin.params < distill.params == thin.details["params_before"]
    assert q.format == "int8" and q.size_bytes * 2 < thin.size_bytes
    for r in results:
        assert 0.0 <= r.accuracy <= 1.0 and r.latency_ms > 0
        assert r.details["eval_images"] == 3  # the held-back quarter of 12 images
    # the teacher labelled the train split and every 2nd of the 6 video frames
    labels = sorted((cfg.out / "data_distill" / "labels").glob("*.txt"))
    assert sum(p.name.startswith("video_") for p in labels) == 3
    assert sum(p.name.startswith("labelled_") for p in labels) == 16  # 8 of 9, each twice
    from edgekit.runtime.model import Model

    m = Model.load(cfg.out / q.artifact)
    assert m.labels == ("person",) and m.task == "detect"
    report = json.loads((cfg.out / "report.json").read_text())
    assert report["stages"][0]["stage"] == "teacher"
    assert "| stage | artifact | person AP50 |" in (cfg.out / "report.md").read_text()
    # a later run starts from that checkpoint: the input is measured first, next to the teacher
    assert (cfg.out / "01_distill.spec.json").is_file()  # the checkpoint describes itself
    again = _config(tmp_path, people, "int8", init=cfg.out / "01_distill.keras", out=tmp_path / "b")
    rows = run_recipe(again, log=logs.append)
    assert [r.stage for r in rows] == ["teacher", "input", "int8"]
    assert rows[1].params == distill.params and rows[1].accuracy == pytest.approx(distill.accuracy)
    # or the checkpoint itself is the student: trained already, so it may start with int8
    student = str(cfg.out / "01_distill.keras")
    alone = run_recipe(_config(tmp_path, people, "int8", student=student, out=tmp_path / "c"))
    assert [r.stage for r in alone] == ["teacher", "input", "int8"]
    assert alone[1].accuracy == pytest.approx(distill.accuracy)
    assert alone[2].accuracy == pytest.approx(rows[2].accuracy, abs=0.05)


def test_imported_teacher_as_student_gets_soft_targets(tmp_path, people):
    """The student is the teacher itself brought in by edgekit import: its classes are cut to
    person, it is resized, and the distill stage adds the teacher's per-anchor soft targets."""
    pytest.importorskip("tensorflow")
    from edgekit.zoo.importer import import_tflite, save_imported

    student = save_imported(import_tflite(TEACHER), tmp_path / "imported.keras")
    logs: list[str] = []
    cfg = _config(tmp_path, people, "distill,int8", student=str(student), width=0.35,
                  input_size=64, videos=(), temperature=2.0, teacher_boxes=False)  # fmt: skip
    results = run_recipe(cfg, log=logs.append)
    assert [r.stage for r in results] == ["teacher", "distill", "int8"]
    assert results[1].details["soft_teacher"].endswith("teacher_import.keras")
    assert results[1].details["temperature"] == 2.0
    assert any("soft targets from" in m and "T=2" in m for m in logs)
    # the photos are completely labelled: no teacher boxes join the labels, soft targets do
    assert (cfg.out / "data_train").is_dir() and not (cfg.out / "data_distill").exists()
    from edgekit.runtime.model import Model

    m = Model.load(cfg.out / results[2].artifact)
    assert m.input_size == (64, 64) and m.labels == ("person",)


@pytest.mark.shared
def test_pose_student_is_distilled_on_teacher_labelled_crops(tmp_path, shared):
    """A zoo pose student, MoveNet as the teacher: person crops of real photos labelled by it,
    each stage scored by PCK@0.1 on held-back crops labelled the same way."""
    pytest.importorskip("tensorflow")
    import shutil

    src = shared("coco128")
    data = tmp_path / "photos"
    for sub in ("images", "labels"):
        (data / sub).mkdir(parents=True)
    for label in sorted((src / "labels").glob("*.txt"))[:24]:
        shutil.copy(label, data / "labels" / label.name)
        shutil.copy(src / "images" / f"{label.stem}.jpg", data / "images")
    names = "".join(
        f"  {i}: {n}\n" for i, n in enumerate(["person"] + [f"c{i}" for i in range(1, 80)])
    )
    (data / "data.yaml").write_text(f"path: .\ntrain: images\nnames:\n{names}")
    cfg = CompressConfig(
        student="movenet_mobilenet_v2", data=data / "data.yaml", stages="distill,int8",
        teacher=str(shared("models", "movenet_single_pose_lightning_ptq.tflite")),
        input_size=64, width=0.35, epochs=1, steps_per_epoch=1, eager=True, batch_size=2,
        bench_runs=3, calib_samples=2, val_fraction=0.25, out=tmp_path / "out",
    )  # fmt: skip
    results = run_recipe(cfg, log=lambda m: None)
    assert [r.stage for r in results] == ["teacher", "distill", "int8"]
    assert all(r.metric == "PCK@0.1" for r in results)
    assert results[0].accuracy == pytest.approx(1.0)  # the teacher's keypoints are the reference
    assert (cfg.out / "data_pose_val" / "data.yaml").is_file()
    assert results[2].format == "int8" and results[2].latency_ms > 0
