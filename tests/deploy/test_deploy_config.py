"""edgekit.yaml: loading, defaults, and validation errors that name the field."""

from __future__ import annotations

import pytest

from edgekit.deploy.config import DeployConfig, config_from_dict, load_config
from edgekit.deploy.render import app_command, sdquote
from edgekit.errors import ConfigError


def test_load_full_config(tmp_path):
    path = tmp_path / "edgekit.yaml"
    path.write_text(
        """
board: coral-usb
task: pose
model: models/movenet_edgetpu.tflite
source: camera:1
outputs: [jsonl, video]
thresholds: {score: 0.3, iou: 0.45}
user: camsvc
hostname: cam-7
wifi_country: DE
service:
  watchdog_sec: 15
  restart_sec: 5
  on_output_error: stop
  extra_args: [--threads, "2"]
  environment: {OMP_NUM_THREADS: 2}
install: {prefix: /opt/cam}
"""
    )
    cfg = load_config(path)
    assert cfg.board == "coral-usb" and cfg.task == "pose" and cfg.user == "camsvc"
    assert cfg.models == (str(tmp_path / "models" / "movenet_edgetpu.tflite"),)
    assert cfg.thresholds.iou == 0.45 and cfg.service.watchdog_sec == 15
    assert cfg.service.environment == (("OMP_NUM_THREADS", "2"),)
    assert app_command(cfg) == [
        "/opt/cam/venv/bin/edgekit", "pose", "--model", "/opt/cam/models/movenet_edgetpu.tflite",
        "--camera", "1", "--score", "0.3", "--no-display", "--quiet", "--on-output-error", "stop",
        "--jsonl", "/var/lib/edgekit/results.jsonl", "--save", "/var/lib/edgekit/annotated.mp4",
        "--threads", "2",
    ]  # fmt: skip
    assert load_config(None) == DeployConfig()
    assert DeployConfig().service.on_output_error == "continue"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"bord": "rpi5"}, "'bord'"),
        ({"board": "rpi3"}, "'board'"),
        ({"task": "segment"}, "'task'"),
        ({"thresholds": {"score": 1.5}}, "'thresholds.score'"),
        ({"thresholds": {"scor": 0.5}}, "'thresholds.scor'"),
        ({"service": {"watchdog_sec": "30"}}, "'service.watchdog_sec'"),
        ({"service": {"on_output_error": "ignore"}}, "'service.on_output_error'"),
        ({"service": {"output_dir": "relative/dir"}}, "'service.output_dir'"),
        ({"service": {"environment": {"BAD-NAME": 1}}}, "'service.environment'"),
        ({"install": {"prefix": "/opt/../etc"}}, "'install.prefix'"),
        ({"user": "Root User"}, "'user'"),
        ({"hostname": "cam_1.local"}, "'hostname'"),
        ({"wifi_country": "gb"}, "'wifi_country'"),
        ({"outputs": ["jsonl", "mjpeg"]}, "'outputs'"),
        ({"models": ["a/m.tflite", "b/m.tflite"]}, "'models'"),
        ({"models": ["bad name.tflite"]}, "'models'"),
    ],
)
def test_validation_errors_name_the_field(data, field):
    with pytest.raises(ConfigError, match=field):
        config_from_dict(data, source="x.yaml")


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("board: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_sdquote_escapes_systemd_specials():
    assert sdquote('a "b" 100% $X\\') == '"a \\"b\\" 100%% $$X\\\\"'


def test_firmware_templates_ship_inside_the_package(tmp_path, monkeypatch):
    from pathlib import Path

    import tomllib

    from edgekit.deploy.render import firmware_dir
    from edgekit.errors import DeployError

    monkeypatch.delenv("EDGEKIT_FIRMWARE", raising=False)
    path = firmware_dir()
    root = Path(__file__).resolve().parents[2]
    assert path.parent == root / "edgekit" and path.resolve() == (root / "firmware").resolve()
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "_firmware/**/*" in data["package-data"]["edgekit"]  # so a wheel carries them
    monkeypatch.setenv("EDGEKIT_FIRMWARE", str(tmp_path))
    with pytest.raises(DeployError, match="not an edgekit firmware folder"):
        firmware_dir()
