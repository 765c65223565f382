"""`edgekit data check`: the library report and the command on coco128 and on a broken dataset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgekit.cli.main import main
from edgekit.data import check_dataset, detect_format
from edgekit.errors import DatasetError


def _broken(root: Path) -> Path:
    """A YOLO dataset with one good image, a truncated JPEG, a malformed label, a missing label,
    a tiny box, a duplicate box and a duplicate image."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (120, 160, 3), np.uint8)
    cv2.imwrite(str(root / "images" / "good.jpg"), img)
    cv2.imwrite(str(root / "images" / "copy.jpg"), img)
    data = (root / "images" / "good.jpg").read_bytes()
    (root / "images" / "trunc.jpg").write_bytes(data[: len(data) // 2])
    cv2.imwrite(str(root / "images" / "bad.jpg"), img[::-1])
    cv2.imwrite(str(root / "images" / "nolabel.jpg"), img[:, ::-1])
    (root / "labels" / "good.txt").write_text(
        "0 0.5 0.5 0.5 0.5\n0 0.5 0.5 0.5 0.5\n1 0.1 0.1 0.005 0.3\n"
    )
    (root / "labels" / "copy.txt").write_text("")
    (root / "labels" / "trunc.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "labels" / "bad.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2\n")
    (root / "data.yaml").write_text("names: [a, b]\ntrain: images\n")
    return root


def test_detect_format(tmp_path):
    (tmp_path / "v" / "Annotations").mkdir(parents=True)
    (tmp_path / "y" / "labels").mkdir(parents=True)
    (tmp_path / "c" / "annotations").mkdir(parents=True)
    (tmp_path / "c" / "annotations" / "instances_val.json").write_text("{}")
    assert [detect_format(tmp_path / n) for n in "vyc"] == ["voc", "yolo", "coco"]
    with pytest.raises(DatasetError, match="cannot tell the dataset format"):
        detect_format(tmp_path)


def test_check_report_finds_every_problem(tmp_path):
    report = check_dataset(_broken(tmp_path))
    assert not report.ok
    texts = [str(p) for p in report.errors]
    assert "labels/bad.txt line 2: expected 5 numbers 'class cx cy w h', got 4" in texts
    assert any(t.startswith("images/trunc.jpg: cannot decode image") for t in texts)
    assert len(texts) == 2
    codes = sorted(p.code for p in report.warnings)
    assert codes == ["duplicate", "duplicate_image", "missing_label", "small"]
    assert report.num_images == 5 and report.empty_images == 2
    assert report.class_counts == (4, 1)


def test_cli_check_coco128(shared, capsys):
    root = shared("coco128")
    assert main(["data", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "images 100, boxes" in out and "empty images 2" in out and "errors 0" in out
    assert "person" in out  # the per-class table
    assert main(["data", "check", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["images"] == 100 and report["empty_images"] == 2
    assert report["boxes"] == sum(c["boxes"] for c in report["classes"])


def test_cli_check_broken_dataset_fails_with_one_line_per_problem(tmp_path, capsys):
    root = _broken(tmp_path)
    assert main(["data", "check", str(root)]) == DatasetError.exit_code
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert "error: labels/bad.txt line 2: expected 5 numbers 'class cx cy w h', got 4" in lines
    assert any(ln.startswith("error: images/trunc.jpg: cannot decode image") for ln in lines)
    assert (
        "warning: labels/nolabel.txt: label file missing (image counted as having no objects)"
        in lines
    )
    assert any(ln.startswith("warning: images/good.jpg: box 2: duplicate of box 1") for ln in lines)
    assert "2 error(s) found" in captured.err
    assert main(["data", "check", str(root), "--json"]) == DatasetError.exit_code
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == 2 and report["problem_counts"]["missing_label"] == 1


def test_cli_check_size_mismatch_and_fatal_errors(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((10, 20, 3), np.uint8))
    coco = {
        "images": [{"id": 1, "file_name": "images/a.png", "width": 40, "height": 10}],
        "annotations": [],
        "categories": [{"id": 1, "name": "x"}],
    }
    (tmp_path / "gt.json").write_text(json.dumps(coco))
    assert main(["data", "check", str(tmp_path / "gt.json")]) == DatasetError.exit_code
    assert (
        "error: images/a.png: image is 20x10 but the annotations say 40x10"
        in capsys.readouterr().out
    )
    (tmp_path / "gt.json").write_text('{\n  "images": [\n}')
    assert main(["data", "check", str(tmp_path / "gt.json")]) == DatasetError.exit_code
    assert "gt.json line 3: JSON syntax error" in capsys.readouterr().err


def test_cli_convert_voc_to_coco_and_yolo(tmp_path, capsys):
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    cv2.imwrite(str(root / "JPEGImages" / "a.jpg"), np.zeros((50, 100, 3), np.uint8))
    (root / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>100</width><height>50</height></size>"
        "<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>50</xmax><ymax>50</ymax></bndbox></object>"
        "</annotation>"
    )
    assert main(["data", "convert", str(root), str(tmp_path / "out.json"), "--to", "coco"]) == 0
    gt = json.loads((tmp_path / "out.json").read_text())
    assert gt["annotations"][0]["bbox"] == pytest.approx([0, 0, 50, 50])
    assert main(["data", "convert", str(root), str(tmp_path / "y"), "--to", "yolo"]) == 0
    assert (
        (tmp_path / "y" / "labels" / "JPEGImages" / "a.txt")
        .read_text()
        .startswith("7 0.250000 0.500000 0.500000 1.000000")
    )
    assert "1 images, 1 boxes" in capsys.readouterr().out


def test_readers_and_checker_import_without_tensorflow():
    code = (
        "import sys; import edgekit.data, edgekit.data.augment, edgekit.data.pipeline, edgekit.cli.data; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
