"""firmware/coral/flash-devboard.sh with a fake ``fastboot`` and a fake Mendel image."""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "firmware" / "coral" / "flash-devboard.sh"

FASTBOOT = """#!/bin/sh
echo "fastboot $*" >> "$FAKE_LOG"
[ "$1" = devices ] && printf '%s' "$FAKE_DEVICES"
exit 0
"""
FLASH_SH = """#!/bin/sh
echo "flash.sh in $(pwd) serial=${ANDROID_SERIAL:-}" >> "$FAKE_LOG"
exit ${FAKE_FLASH_RC:-0}
"""


@pytest.fixture
def env(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fb = bin_dir / "fastboot"
    fb.write_text(FASTBOOT)
    fb.chmod(0o755)
    image = tmp_path / "enterprise-eagle-20211117215217"
    image.mkdir()
    (image / "flash.sh").write_text(FLASH_SH)
    log = tmp_path / "log"
    log.write_text("")
    base = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_LOG": str(log)}
    return base, image, log, bin_dir


def _run(args, env, **extra):
    return subprocess.run(
        ["sh", str(SCRIPT), *map(str, args)], env={**env, **extra}, capture_output=True, text=True
    )


def test_flashes_the_one_board_in_fastboot_mode(env):
    base, image, log, _ = env
    proc = _run([image], base, FAKE_DEVICES="1b0741d6f0609912\tfastboot\n")
    assert proc.returncode == 0, proc.stderr
    lines = log.read_text().splitlines()
    assert lines[0] == "fastboot devices" and lines[1].startswith(f"flash.sh in {image}")


def test_checks_before_flashing(env, tmp_path):
    base, image, log, bin_dir = env
    assert _run([], base).returncode == 2
    assert _run([tmp_path / "nope"], base, FAKE_DEVICES="x\tfastboot\n").returncode == 2
    proc = _run([image], base, FAKE_DEVICES="")
    assert proc.returncode == 4 and "no board in fastboot mode" in proc.stderr
    two = "aaa\tfastboot\nbbb\tfastboot\n"
    assert _run([image], base, FAKE_DEVICES=two).returncode == 4
    assert _run([image, "ccc"], base, FAKE_DEVICES=two).returncode == 4
    assert "flash.sh" not in log.read_text()  # nothing flashed so far
    proc = _run([image, "bbb"], base, FAKE_DEVICES=two)
    assert proc.returncode == 0 and "serial=bbb" in log.read_text()
    proc = _run([image], base, FAKE_DEVICES="aaa\tfastboot\n", FAKE_FLASH_RC="7")
    assert proc.returncode == 5 and "flash.sh failed" in proc.stderr
    os.unlink(bin_dir / "fastboot")
    proc = _run([image], base)
    assert proc.returncode == 3 and "fastboot not found" in proc.stderr


def test_accepts_the_image_zip(env, tmp_path):
    base, image, log, _ = env
    if subprocess.run(["sh", "-c", "command -v unzip"], capture_output=True).returncode:
        pytest.skip("unzip not installed")
    archive = tmp_path / "mendel.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(image / "flash.sh", f"{image.name}/flash.sh")
    proc = _run([archive], base, FAKE_DEVICES="aaa\tfastboot\n")
    assert proc.returncode == 0, proc.stderr
    (line,) = [ln for ln in log.read_text().splitlines() if ln.startswith("flash.sh in ")]
    unpacked = Path(line.split()[2])
    assert unpacked.name == image.name and unpacked != image
    assert not unpacked.exists()  # the temporary unzip folder is cleaned up
