"""The device side imports and RUNS with TensorFlow absent.

Each check runs in a fresh interpreter whose meta-path makes ``import tensorflow`` (and keras,
tf_keras, tensorflow_model_optimization) raise ImportError, as on a Raspberry Pi with only
``edgekit[device]`` installed. The shim also fails the run if any of them ended up imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from shared_data import SHARED_DATA

BLOCKED = ("tensorflow", "keras", "tf_keras", "tensorflow_model_optimization")

SHIM = textwrap.dedent(
    f"""
    import importlib.abc, sys
    BLOCKED = {BLOCKED!r}

    class _NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked: TensorFlow must not be needed here")
            return None

    sys.meta_path.insert(0, _NoTensorFlow())
    for _name in list(sys.modules):
        if _name.split(".")[0] in BLOCKED:
            del sys.modules[_name]

    def _check_clean():
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        if leaked:
            print("edgekit-test: imported " + ", ".join(leaked), file=sys.stderr)
            sys.exit(99)
    """
)

DEVICE_MODULES = (
    "edgekit.core.types",
    "edgekit.core.artifact",
    "edgekit.runtime.interpreter",
    "edgekit.runtime.model",
    "edgekit.runtime.input_domain",
    "edgekit.runtime.metadata",
    "edgekit.runtime.step",
    "edgekit.core.flatbuffer",
    "edgekit.io.sources",
    "edgekit.io.sinks",
    "edgekit.loop",
    "edgekit.bench",
    "edgekit.bench.report",
    "edgekit.bench.machine",
    "edgekit.bench.ssh",
    "edgekit.bench.remote",
    "edgekit.bench.compare",
    "edgekit.app",
    "edgekit.describe",
    "edgekit.export.edgetpu",
    "edgekit.cli.main",
    "edgekit.cli.quiet",
    "edgekit.cli.run",
    "edgekit.cli.info",
    "edgekit.cli.bench",
)


def run_without_tf(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SHIM + "\n" + code],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cli_without_tf(*args: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent(
        f"""
        from edgekit.cli.main import main
        code = main({[str(a) for a in args]!r})
        _check_clean()
        sys.exit(code)
        """
    )
    return run_without_tf(code)


def test_the_shim_blocks_tensorflow():
    proc = run_without_tf("import tensorflow")
    assert proc.returncode != 0 and "blocked" in proc.stderr


def test_device_modules_import_without_tensorflow():
    code = "import importlib\n" + "".join(
        f"importlib.import_module({m!r})\n" for m in DEVICE_MODULES
    )
    proc = run_without_tf(code + "_check_clean()\n")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("command", ["detect", "pose", "classify", "info", "bench"])
def test_help_without_tensorflow(command):
    proc = run_cli_without_tf(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout


def _shared_model(name: str):
    path = SHARED_DATA / "models" / name
    if not path.is_file():
        pytest.skip(f"shared data not available: {path}")
    return path


def test_info_runs_without_tensorflow():
    model = _shared_model("coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite")
    proc = run_cli_without_tf("info", model, "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["task"] == "detect" and info["loadable"] is True


def test_bench_runs_without_tensorflow(tmp_path):
    model = _shared_model("movenet_single_pose_lightning_ptq.tflite")
    out = tmp_path / "bench.json"
    proc = run_cli_without_tf("bench", model, "--runs", "3", "--warmup", "1", "--json", out, "-q")
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(out.read_text())["results"]
    assert result["backend"] != "tensorflow" and result["stages"]["invoke"]["p50_ms"] > 0


def test_detect_runs_without_tensorflow(tmp_path):
    model = _shared_model("coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite")
    out = tmp_path / "d.jsonl"
    proc = run_cli_without_tf(
        "detect", "--model", model, "--max-frames", "2", "--no-display", "--jsonl", out
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["detections"]


def test_pose_runs_without_tensorflow(tmp_path):
    model = _shared_model("movenet_single_pose_lightning_ptq.tflite")
    out = tmp_path / "p.jsonl"
    proc = run_cli_without_tf(
        "pose", "--model", model, "--max-frames", "2", "--no-display", "--jsonl", out, "-q"
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and len(rows[0]["poses"][0]["keypoints"]) == 17
