"""The Raspberry Pi OS install path keeps the system numpy (issue #11): the ``pi`` extra's pins,
install.sh's numpy constraint and Coral key order, and tools/pi_stack_check.py's refusal to run
without a Pi-like stack. The full check (a --system-site-packages venv over apt's numpy and
scipy, ``pip install ".[pi]"``, ``edgekit detect``) is ``tools/pi_stack_check.py``, run by
``.ci/run``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.deploy.bundle import bundle_files
from edgekit.deploy.config import config_from_dict

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
requirements = pytest.importorskip("packaging.requirements")

REPO = Path(__file__).resolve().parents[2]
# Raspberry Pi OS Bookworm, 64-bit; Trixie moves to Python 3.13 with numpy 2.
BOOKWORM = {"python_version": "3.11", "platform_machine": "aarch64", "sys_platform": "linux"}
TRIXIE = {**BOOKWORM, "python_version": "3.13"}


def _pi_extra(env: dict[str, str]) -> dict[str, requirements.Requirement]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    reqs = [requirements.Requirement(r) for r in data["project"]["optional-dependencies"]["pi"]]
    return {r.name: r for r in reqs if r.marker is None or r.marker.evaluate(env)}


def test_pi_extra_accepts_bookworms_numpy_and_never_numpy_2():
    pi = _pi_extra(BOOKWORM)
    assert pi["numpy"].specifier.contains("1.24.2")  # apt's python3-numpy on Bookworm
    assert not pi["numpy"].specifier.contains("2.0.0")
    # opencv-python-headless 4.12.0.88 needs numpy>=2,<2.3 and 5.x numpy>=2 (on Python >= 3.9);
    # 4.11.0.86 needs numpy>=1.23.5 on Python 3.11 and has a cp37-abi3 manylinux aarch64 wheel.
    opencv = pi["opencv-python-headless"].specifier
    assert opencv.contains("4.11.0.86") and not opencv.contains("4.12.0.88")
    assert not opencv.contains("5.0.0.93")
    assert pi["ai-edge-litert"].specifier.contains("2.3.0")  # numpy>=1.23.2, aarch64 wheels
    # matplotlib 3.10+ with contourpy 1.3.3 pulls numpy>=1.25; the sample falls back instead
    assert not {"matplotlib", "scikit-image", "tensorflow", "pycoral", "tflite-runtime"} & set(pi)
    assert set(pi) == {"numpy", "opencv-python-headless", "ai-edge-litert"}


def test_pi_extra_does_not_force_numpy_1_where_the_os_has_numpy_2():
    assert "numpy" not in _pi_extra(TRIXIE)  # Trixie: apt's numpy 2.2 must be kept as well
    assert "ai-edge-litert" in _pi_extra(TRIXIE)


def _install_sh(tmp_path: Path, board: str) -> str:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    cfg = config_from_dict({"board": board, "model": str(model)})
    return {f.name: f.data for f in bundle_files(cfg)}["install.sh"].decode()


def _numpy_constraint(script: str, python: str) -> subprocess.CompletedProcess:
    func = re.search(r"^numpy_constraint\(\) \{\n.*?^\}\n", script, re.S | re.M)
    assert func is not None, "install.sh has no numpy_constraint function"
    return subprocess.run(
        ["sh", "-c", func.group(0) + 'numpy_constraint "$1"', "sh", python],
        capture_output=True,
        text=True,
    )


def test_install_sh_pins_pip_to_the_system_numpy(tmp_path):
    script = _install_sh(tmp_path, "rpi5")
    proc = _numpy_constraint(script, sys.executable)
    assert proc.returncode == 0 and proc.stdout == f"numpy=={np.__version__}\n"
    no_numpy = tmp_path / "python-without-numpy"
    no_numpy.write_text("#!/bin/sh\necho 'ModuleNotFoundError: numpy' >&2\nexit 1\n")
    no_numpy.chmod(0o755)
    proc = _numpy_constraint(script, str(no_numpy))
    assert proc.returncode == 0 and proc.stdout == ""  # no pin (an empty constraints file)
    # the venv is --system-site-packages and pip gets the pin as a constraint
    assert 'python3 -m venv --system-site-packages "$PREFIX/venv"' in script
    assert 'numpy_constraint python3 > "$PREFIX/pip-constraints.txt"' in script
    assert re.search(
        r'"\$PREFIX/venv/bin/pip" install --upgrade -c "\$PREFIX/pip-constraints.txt" '
        r"'edgekit\[pi\]'",
        script,
    )


def test_install_sh_fetches_corals_key_before_laying_out_its_list(tmp_path):
    script = _install_sh(tmp_path, "coral-usb")
    key = script.index("gpg --dearmor")
    listed = script.index("put 0644 rootfs/etc/apt/sources.list.d/coral-edgetpu.list")
    update = script.index("apt-get update -q\n", key)  # the packages' update, after the key
    assert key < listed < update
    assert "libedgetpu1-std" in script
    pi = _install_sh(tmp_path, "rpi4")
    assert "gpg" not in pi and "coral" not in pi.lower() and "libedgetpu" not in pi


def test_pi_stack_check_says_when_the_machine_has_no_pi_stack(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "pi_stack_check.py"),
            "--python",
            str(tmp_path / "none"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert "not a Raspberry Pi OS-like stack here" in proc.stderr and "not found" in proc.stderr
