"""The machine block: board, CPU, governor, temperature and throttling, read from a fake
/proc + /sys tree and a fake vcgencmd, as on a Raspberry Pi 5 and a Coral Dev Board."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from edgekit.bench import machine
from edgekit.bench.machine import decode_throttled, machine_info, thermal_state

PI5_CPUINFO = """processor\t: 0
BogoMIPS\t: 108.00
CPU implementer\t: 0x41
CPU part\t: 0xd0b

Revision\t: d04170
Serial\t\t: 2b9a6ea5d4a9fe1c
Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""


def _tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


@pytest.fixture
def pi5(tmp_path) -> Path:
    return _tree(
        tmp_path,
        {
            "proc/cpuinfo": PI5_CPUINFO,
            "proc/device-tree/model": b"Raspberry Pi 5 Model B Rev 1.0\x00",
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor": "ondemand\n",
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq": "2400000\n",
            "sys/class/thermal/thermal_zone0/type": "cpu-thermal\n",
            "sys/class/thermal/thermal_zone0/temp": "55200\n",
        },
    )


def fake_vcgencmd(answers: dict[str, str | None]):
    calls = []

    def run(args):
        calls.append(list(args))
        return answers.get(args[0])

    run.calls = calls
    return run


def test_decode_throttled_names_the_bits():
    assert decode_throttled(0) == []
    assert decode_throttled(0x50005) == [
        "under-voltage",
        "throttled",
        "under-voltage-occurred",
        "throttling-occurred",
    ]
    assert decode_throttled(0x80008) == [
        "soft-temperature-limit",
        "soft-temperature-limit-occurred",
    ]
    assert decode_throttled(1 << 5) == ["bit 5"]


def test_pi5_machine_block(pi5):
    info = machine_info(root=pi5)
    assert info["board"] == "Raspberry Pi 5 Model B Rev 1.0"  # NUL stripped
    assert info["cpu"] == "Cortex-A76"  # from 'CPU part', not the board name
    assert info["governor"] == "ondemand"
    assert info["edgekit"] and info["cores"] >= 1


def test_pi5_thermal_state_prefers_vcgencmd(pi5):
    vc = fake_vcgencmd({"measure_temp": "temp=61.2'C", "get_throttled": "throttled=0x80008"})
    state = thermal_state(root=pi5, vcgencmd=vc)
    assert state == {
        "temp_c": 61.2,
        "cpu_mhz": 2400,
        "throttled": "0x80008",
        "throttled_flags": ["soft-temperature-limit", "soft-temperature-limit-occurred"],
    }
    assert vc.calls == [["measure_temp"], ["get_throttled"]]


def test_without_vcgencmd_the_thermal_zone_is_read(pi5):
    state = thermal_state(root=pi5, vcgencmd=fake_vcgencmd({}))
    assert state["temp_c"] == 55.2 and state["throttled"] is None
    assert state["throttled_flags"] is None


def test_coral_dev_board(tmp_path):
    root = _tree(
        tmp_path,
        {
            "proc/cpuinfo": "processor\t: 0\nCPU part\t: 0xd03\n",
            "proc/device-tree/model": b"Freescale i.MX8MQ Phanbee\x00",
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor": "performance\n",
            "sys/class/thermal/thermal_zone1/type": "gpu-thermal\n",
            "sys/class/thermal/thermal_zone1/temp": "40000\n",
            "sys/class/thermal/thermal_zone0/type": "cpu-thermal\n",
            "sys/class/thermal/thermal_zone0/temp": "47000\n",
            "sys/class/apex/apex_0/temp": "52300\n",
        },
    )
    info = machine_info(root=root)
    assert (info["board"], info["cpu"], info["governor"]) == (
        "Freescale i.MX8MQ Phanbee",
        "Cortex-A53",
        "performance",
    )
    state = thermal_state(root=root, vcgencmd=fake_vcgencmd({}))
    assert state["temp_c"] == 47.0 and state["tpu_temp_c"] == 52.3 and state["cpu_mhz"] is None


def test_a_pc_has_no_board_and_no_throttling(tmp_path):
    root = _tree(tmp_path, {"proc/cpuinfo": "model name\t: Intel(R) Xeon(R) Processor\n"})
    info = machine_info(root=root)
    assert info["cpu"] == "Intel(R) Xeon(R) Processor" and info["board"] is None
    assert info["governor"] is None
    assert thermal_state(root=root, vcgencmd=fake_vcgencmd({})) == {
        "temp_c": None,
        "cpu_mhz": None,
        "throttled": None,
        "throttled_flags": None,
    }


def test_real_vcgencmd_on_path_is_used(tmp_path, monkeypatch):
    exe = tmp_path / "bin" / "vcgencmd"
    exe.parent.mkdir()
    exe.write_text(
        f"#!{sys.executable}\nimport sys\n"
        "print({'measure_temp': \"temp=48.3'C\", 'get_throttled': 'throttled=0x0'}[sys.argv[1]])\n"
    )
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{exe.parent}{os.pathsep}{os.environ['PATH']}")
    state = thermal_state(root=tmp_path)
    assert state["temp_c"] == 48.3 and state["throttled"] == "0x0"
    assert state["throttled_flags"] == []


def test_failing_vcgencmd_is_ignored(tmp_path, monkeypatch):
    exe = tmp_path / "bin" / "vcgencmd"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\necho 'VCHI initialization failed' >&2\nexit 255\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{exe.parent}{os.pathsep}{os.environ['PATH']}")
    assert thermal_state(root=tmp_path)["throttled"] is None


def test_bench_with_machine_takes_state_before_and_after(monkeypatch):
    order = []
    monkeypatch.setattr(machine, "thermal_state", lambda: order.append("state") or {"temp_c": 1})
    monkeypatch.setattr(
        "edgekit.bench.latency.bench_models",
        lambda config, progress=None: order.append("bench") or ["r"],
    )
    results, block = machine.bench_with_machine(object())
    assert results == ["r"] and order == ["state", "bench", "state"]
    assert block["before"] == block["after"] == {"temp_c": 1} and block["seconds"] >= 0
    json.dumps(block)  # the block is JSON as it is
