"""What machine a benchmark ran on, and its thermal state before and after.

The ``machine`` block of ``edgekit bench --json`` (the same fields on this machine and on a target
measured through SSH)::

    {"cpu": "Cortex-A76", "cores": 4, "arch": "aarch64", "os": "Linux 6.6.51+rpt-rpi-2712",
     "python": "3.11.2", "edgekit": "0.1.0", "ai-edge-litert": "2.3.0",
     "board": "Raspberry Pi 5 Model B Rev 1.0", "governor": "ondemand",
     "before": {"temp_c": 47.2, "cpu_mhz": 1500, "throttled": "0x0", "throttled_flags": []},
     "after":  {"temp_c": 61.5, "cpu_mhz": 2400, "throttled": "0x0", "throttled_flags": []}}

``board`` is ``/proc/device-tree/model`` (Raspberry Pi, Coral Dev Board; ``None`` on a PC),
``governor`` the CPU frequency governor of cpu0. ``temp_c`` comes from ``vcgencmd measure_temp``
when present, else the CPU thermal zone; ``throttled`` is ``vcgencmd get_throttled`` (Raspberry Pi
only) decoded into ``throttled_flags``; ``tpu_temp_c`` appears where an Edge TPU (PCIe/Dev Board)
reports its temperature. Every field is ``None`` where the machine does not say.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "THROTTLE_BITS",
    "bench_with_machine",
    "decode_throttled",
    "machine_info",
    "thermal_state",
]

# bit -> meaning, from the Raspberry Pi documentation of `vcgencmd get_throttled`.
THROTTLE_BITS: dict[int, str] = {
    0: "under-voltage",
    1: "arm-frequency-capped",
    2: "throttled",
    3: "soft-temperature-limit",
    16: "under-voltage-occurred",
    17: "arm-frequency-capping-occurred",
    18: "throttling-occurred",
    19: "soft-temperature-limit-occurred",
}

# ARM 'CPU part' ids of the cores on Raspberry Pi and Coral boards.
_ARM_PARTS: dict[str, str] = {
    "0xd03": "Cortex-A53",  # Pi 3, Zero 2, Coral Dev Board (i.MX 8M)
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd08": "Cortex-A72",  # Pi 4, Pi 400, CM4
    "0xd0b": "Cortex-A76",  # Pi 5, CM5
}

Runner = Callable[[Sequence[str]], str | None]


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", "replace").replace("\x00", "").strip() or None
    except OSError:
        return None


def _vcgencmd(args: Sequence[str]) -> str | None:
    """``vcgencmd ARGS`` stdout, or ``None`` when it is absent or fails."""
    exe = shutil.which("vcgencmd")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def decode_throttled(value: int) -> list[str]:
    """The names of the bits set in a ``get_throttled`` value (unknown bits as ``bit N``)."""
    return [THROTTLE_BITS.get(bit, f"bit {bit}") for bit in range(32) if value >> bit & 1]


def _cpu_temp(root: Path) -> float | None:
    zones = sorted((root / "sys/class/thermal").glob("thermal_zone*"))
    # The CPU zone when one says so (cpu-thermal on a Pi, cpu-thermal/soc-thermal elsewhere).
    zones.sort(key=lambda z: "cpu" not in (_read(z / "type") or ""))
    for zone in zones:
        raw = _read(zone / "temp")
        if raw is not None and raw.lstrip("-").isdigit():
            return round(int(raw) / 1000.0, 1)
    return None


def thermal_state(root: Path = Path("/"), vcgencmd: Runner = _vcgencmd) -> dict[str, Any]:
    """Temperature, clock and throttling now: ``{"temp_c", "cpu_mhz", "throttled",
    "throttled_flags"}`` (+ ``tpu_temp_c`` with an Edge TPU). ``root`` and ``vcgencmd`` are
    injectable for tests."""
    temp: float | None = None
    out = vcgencmd(["measure_temp"])
    if out and out.startswith("temp="):
        try:
            temp = float(out[5:].split("'")[0])
        except ValueError:
            temp = None
    if temp is None:
        temp = _cpu_temp(root)
    state: dict[str, Any] = {"temp_c": temp}
    khz = _read(root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    state["cpu_mhz"] = round(int(khz) / 1000) if khz and khz.isdigit() else None
    throttled = vcgencmd(["get_throttled"])
    value: int | None = None
    if throttled and throttled.startswith("throttled="):
        try:
            value = int(throttled.split("=", 1)[1], 0)
        except ValueError:
            value = None
    state["throttled"] = None if value is None else hex(value)
    state["throttled_flags"] = None if value is None else decode_throttled(value)
    tpu = _read(root / "sys/class/apex/apex_0/temp")
    if tpu is not None and tpu.lstrip("-").isdigit():
        state["tpu_temp_c"] = round(int(tpu) / 1000.0, 1)
    return state


def _cpu_model(root: Path) -> str:
    """x86's 'model name'; on ARM (no model name) the core named from its 'CPU part' id, else
    the 'Hardware'/'Model' line."""
    fields: dict[str, str] = {}
    for line in (_read(root / "proc/cpuinfo") or "").splitlines():
        key, _, value = line.partition(":")
        if value.strip():
            fields.setdefault(key.strip(), value.strip())
    if "model name" in fields:
        return fields["model name"]
    part = _ARM_PARTS.get(fields.get("CPU part", "").lower())
    if part is not None:
        return part
    return fields.get("Hardware") or fields.get("Model") or ""


def machine_info(root: Path = Path("/")) -> dict[str, Any]:
    """CPU model, core count, OS, Python, edgekit and interpreter backend versions, board and
    CPU governor, for reports (see the module docstring)."""
    from importlib import metadata

    from edgekit import __version__

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 0
    info: dict[str, Any] = {
        "cpu": _cpu_model(root) or platform.processor() or platform.machine(),
        "cores": cores,
        "arch": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "edgekit": __version__,
    }
    for dist in ("ai-edge-litert", "tflite-runtime"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    info["board"] = _read(root / "proc/device-tree/model")
    info["governor"] = _read(root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    return info


def machine_line(root: Path = Path("/")) -> str:
    """One line for a benchmark table: CPU model, cores, architecture."""
    info = machine_info(root)
    return f"{info['cpu']}, {info['cores']} cores, {info['arch']}"


def bench_with_machine(
    config: Any, *, progress: Callable[[int, int], None] | None = None
) -> tuple[list[Any], dict[str, Any]]:
    """``bench_models(config)`` plus the machine block, with the thermal state taken just
    before and just after the timed runs (and the wall time between them)."""
    from edgekit.bench.latency import bench_models

    machine = machine_info()
    machine["before"] = thermal_state()
    t0 = time.monotonic()
    results = bench_models(config, progress=progress)
    machine["seconds"] = round(time.monotonic() - t0, 2)
    machine["after"] = thermal_state()
    return results, machine
