"""``edgekit models list``."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgekit.cli.models import models


def test_list_without_stats_prints_every_model():
    result = CliRunner().invoke(models, ["list", "--no-stats"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["name", "task", "input", "params", "MACs", "edgetpu"]
    names = [line.split()[0] for line in lines[1:] if line and ":" not in line]
    assert "mobilenet_v2" in names and "yolo_tiny" in names and "movenet_mobilenet_v2" in names
    assert "mobilenet_v3_large: not Edge-TPU-ready" in result.output


def test_list_json_with_stats_counts_params_and_macs():
    pytest.importorskip("tensorflow")
    result = CliRunner().invoke(models, ["list", "--task", "pose", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in result.output.splitlines()]
    assert row["name"] == "movenet_mobilenet_v2"
    assert row["input_size"] == [192, 192]
    assert row["params"] > 1_000_000 and row["macs"] > 100_000_000
    assert row["edgetpu_ready"] is True


def test_unknown_task_is_refused():
    result = CliRunner().invoke(models, ["list", "--task", "segment", "--no-stats"])
    assert result.exit_code == 2
