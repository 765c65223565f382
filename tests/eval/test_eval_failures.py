"""``edgekit eval`` tells the truth about its reports: an unwritable --json/--plot fails before
the evaluation (exit 5), a report that fails after it exits non-zero naming what was written
and keeps the numbers on screen, and --plot of a non-detector is refused before predicting.
The evaluation itself is a fake at the library boundary (``evaluate_model``): no model runs."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from edgekit.cli.main import main
from edgekit.errors import SinkError
from edgekit.eval import report
from edgekit.eval.run import EvalResult


def fake_result(task: str = "detect") -> EvalResult:
    return EvalResult(
        model="m.tflite",
        data="data",
        split="val",
        images=3,
        task=task,
        metrics={"mAP": 0.25, "AP50": 0.5},
        per_class={"person": {"gt": 4, "AP50": 0.5}},
        recall=None,
        pr_curves=None,
    )


@pytest.fixture
def evaluations(monkeypatch):
    """Replace evaluate_model: record each call, call on_start with a fake model, return a
    fake result of the task given in ``calls.task``."""
    calls = SimpleNamespace(count=0, task="detect")

    def fake(config, *, progress=None, on_start=None):
        calls.count += 1
        if on_start is not None:
            model = SimpleNamespace(
                name="m.tflite",
                spec=SimpleNamespace(task=calls.task, decoder="x"),
                backend=SimpleNamespace(name="fake"),
            )
            on_start(model, FakeDataset())
        return fake_result(calls.task)

    monkeypatch.setattr("edgekit.eval.evaluate_model", fake)
    return calls


class FakeDataset:
    num_boxes = 4
    num_classes = 1

    def __len__(self) -> int:
        return 3


def args(tmp_path, *extra):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    return ["eval", str(model), "--data", str(tmp_path), *map(str, extra)]


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_unwritable_report_fails_before_evaluating(option, tmp_path, evaluations, capsys):
    folder = tmp_path / "taken"
    folder.mkdir()
    code = main(args(tmp_path, option, folder))
    err = capsys.readouterr().err
    assert code == 5 and evaluations.count == 0  # nothing was evaluated
    assert err.count("\n") == 1 and str(folder) in err and "Is a directory" in err


def test_report_check_leaves_no_file(tmp_path, evaluations, capsys):
    out = tmp_path / "r.json"
    report.check_writable(out)
    assert not out.exists()
    out.write_text("old")
    report.check_writable(out)
    assert out.read_text() == "old"


@pytest.mark.parametrize("quiet", [False, True])
def test_a_report_failing_after_the_evaluation(quiet, tmp_path, evaluations, monkeypatch, capsys):
    """The disk fills between the JSON and the plot: exit 5, the JSON named as written, the
    metrics on screen even with -q."""

    def full_disk(result, path, top=8):
        raise SinkError(f"{path}: cannot write plot (No space left on device)")

    monkeypatch.setattr(report, "plot_pr_curves", full_disk)
    out_json, out_png = tmp_path / "r.json", tmp_path / "pr.png"
    extra = ["--json", out_json, "--plot", out_png] + (["-q"] if quiet else [])
    code = main(args(tmp_path, *extra))
    captured = capsys.readouterr()
    assert code == 5 and evaluations.count == 1
    (line,) = captured.err.splitlines()
    assert line == (
        f"edgekit: error: evaluation finished but its report failed: {out_png}: cannot write "
        f"plot (No space left on device); written: {out_json}; the metrics are printed above"
    )
    assert json.loads(out_json.read_text())["metrics"] == {"mAP": 0.25, "AP50": 0.5}
    assert "mAP" in captured.out and "0.250" in captured.out


def test_plot_of_a_classifier_is_refused_before_predicting(tmp_path, evaluations, capsys):
    evaluations.task = "classify"
    code = main(args(tmp_path, "--plot", tmp_path / "pr.png"))
    err = capsys.readouterr().err
    assert code == 2 and "--plot draws PR curves of detectors" in err
    assert not (tmp_path / "pr.png").exists()
