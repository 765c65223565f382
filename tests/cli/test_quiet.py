"""TensorFlow's own log lines stay off the terminal unless ``edgekit -v``; errors always show
(edgekit.cli.quiet). The end-to-end checks run the CLI in a subprocess, as a user would."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import edgekit.cli.quiet as quiet_mod
from edgekit.cli.main import main
from edgekit.cli.quiet import is_noise

# Lines TensorFlow 2.21 printed here during `edgekit export` (before this change).
NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796398528.446446    8608 port.cc:153] oneDNN custom operations are on. You may "
    "see slightly different numerical results due to floating-point round-off errors from "
    "different computation orders. To turn them off, set the environment variable "
    "`TF_ENABLE_ONEDNN_OPTS=0`.",
    "I0000 00:00:1796398528.446781    8608 cudart_stub.cc:31] Could not find cuda drivers on your "
    "machine, GPU will not be used.",
    "I0000 00:00:1796398528.495104    8608 cpu_feature_guard.cc:227] This TensorFlow binary is "
    "optimized to use available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild "
    "TensorFlow with the appropriate compiler flags.",
    "E0000 00:00:1796398532.817164    8608 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
    "CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    "W0000 00:00:1796398542.770280    8608 tf_tfl_flatbuffer_helpers.cc:364] Ignored output_format.",
    "I1120 20:47:04.123456    8608 loader.cc:236] Restoring SavedModel bundle.",
    "fully_quantize: 0, inference_type: 6, input_inference_type: UINT8, output_inference_type: UINT8",
]
KEPT = [
    "edgekit: error: /tmp/x.keras: cannot load Keras model (...)",
    "E0000 00:00:1796398532.817164    8608 op_kernel.cc:1833] OP_REQUIRES failed: out of memory",
    "F0000 00:00:1796398532.817164    8608 check.cc:12] Check failed: size > 0",
    "Traceback (most recent call last):",
    "wrote det.tflite (0.59 MB, int8, input uint8 64x64, decoder yolo, 11.1s)",
    "",
]


def test_noise_lines_are_recognised_and_errors_are_not():
    assert all(is_noise(line) for line in NOISE)
    assert not any(is_noise(line) for line in KEPT)


def test_the_filter_process_drops_only_noise():
    text = "\n".join(NOISE[:3] + KEPT[:3] + NOISE[3:] + ["last line without newline"])
    proc = subprocess.run(
        [sys.executable, "-I", "-S", quiet_mod.__file__],
        input=text.encode(),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert proc.stdout.decode().splitlines() == [*KEPT[:3], "last line without newline"]


def test_partial_lines_pass_at_once_unless_they_may_be_noise():
    chunks = [
        b"\rcalibrating 1/4",  # a progress bar redrawn in place: shown as it comes
        b"\rcalibrating 2/4",
        b"\n",
        b"I0000 00:00:1796398528.446446    8608 port.cc:153] one",  # held: may be noise
        b"DNN custom operations are on.\nedgekit: err",
        b"or: boom\n",
        b"Traceback (most recent call last):",  # the last, unterminated line still shows
    ]
    events: list = []

    def read(_n):
        events.append("read")
        return chunks.pop(0) if chunks else b""

    quiet_mod._filter(read, lambda data: events.append(data))
    writes = [e for e in events if e != "read"]
    assert b"".join(writes) == (
        b"\rcalibrating 1/4\rcalibrating 2/4\nedgekit: error: boom\n"
        b"Traceback (most recent call last):"
    )
    assert events[:4] == ["read", b"\rcalibrating 1/4", "read", b"\rcalibrating 2/4"]


@pytest.mark.skipif(os.name != "posix", reason="pseudo-terminals")
def test_a_terminal_stays_a_terminal():
    import pty

    code = (
        "import os, sys\n"
        "from edgekit.cli.quiet import Quiet\n"
        "q = Quiet(); q.start(); q._start_filter()\n"
        "print(os.isatty(2), os.get_terminal_size(2).columns, flush=True)\n"
        "sys.stderr.write('I0000 00:00:1796398528.4  8608 port.cc:153] noise\\nkept\\n')\n"
        "sys.stderr.flush(); q.stop()\n"
    )
    master, slave = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 123, 0, 0))
    proc = subprocess.run(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=slave, timeout=60
    )
    os.close(slave)
    received = b""
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        received += data
    os.close(master)
    assert proc.returncode == 0
    assert proc.stdout.split() == [b"True", b"123"]
    assert received.replace(b"\r", b"").splitlines() == [b"kept"]


@pytest.mark.parametrize("argv", [["info", "--help"], ["-v", "models", "--help"]])
def test_main_restores_everything(argv, monkeypatch, capsys):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    before = (logging.getLogger("tensorflow").level, len(_warning_filters()))
    assert main(argv) == 0
    assert (logging.getLogger("tensorflow").level, len(_warning_filters())) == before
    assert not any(isinstance(f, quiet_mod._OnFirstImport) for f in sys.meta_path)
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    assert quiet_mod._current is None


def _warning_filters():
    import warnings

    return warnings.filters


def test_quiet_mode_does_not_override_the_users_own_level(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    state = quiet_mod.Quiet()
    state.start()
    try:
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
        assert logging.getLogger("tensorflow").level == logging.ERROR
    finally:
        state.stop()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


def edgekit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.mark.tf
def test_a_tensorflow_command_is_quiet_and_verbose_with_v(tmp_path):
    pytest.importorskip("tensorflow")
    broken = tmp_path / "broken.keras"
    broken.write_text("not a keras file\n")
    args = ["export", str(broken), "--format", "float32", "--out", str(tmp_path / "x.tflite")]
    quiet = edgekit(*args)
    assert quiet.returncode == 7, quiet.stderr
    # TensorFlow was imported (the Keras loader ran), its lines were dropped, the error shows
    assert quiet.stderr.splitlines() == [quiet.stderr.splitlines()[0]]
    assert quiet.stderr.startswith(f"edgekit: error: {broken}: cannot load Keras model")
    verbose = edgekit("-v", *args)
    assert verbose.returncode == 7
    lines = verbose.stderr.splitlines()
    assert sum(is_noise(line) for line in lines) >= 2, verbose.stderr
    assert any("oneDNN" in line or "cuda" in line.lower() for line in lines)
    assert lines[-1].startswith("edgekit: error:")


@pytest.mark.tf
@pytest.mark.slow
def test_an_export_prints_only_edgekits_lines(tmp_path):
    pytest.importorskip("tensorflow")
    out = tmp_path / "y.tflite"
    proc = edgekit(
        "export", "yolo_tiny", "--img", "64", "--width", "0.25", "--format", "int8",
        "--calib-samples", "4", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert Path(out).is_file()
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert all(line.startswith(("wrote ", "Edge TPU:", "calibrating")) for line in lines), lines
