#!/usr/bin/env python3
"""Does every wheel of edgekit's ``device`` and ``pi`` sets exist for a 64-bit Raspberry Pi?

Resolves each set with ``pip download --only-binary=:all:`` for aarch64 / CPython 3.11 /
manylinux up to glibc 2.36 (Raspberry Pi OS Bookworm) from this (x86-64) machine, into a
wheelhouse, and prints every wheel with its tags. ``--only-binary`` means a set that would need
a source build on the Pi fails here. pip matches ``--platform`` tags exactly, so every manylinux
tag from 2_17 to 2_36 is listed. The ``pi`` set is resolved with numpy pinned to Bookworm's apt
numpy (1.24.2), as install.sh pins it on the Pi.

    python3 tools/arm64_wheels.py [--out DIR] [--sets device pi]

writes DIR/<set>/*.whl (a wheelhouse per set: tools/pi_emulated_smoke.sh installs from DIR/pi).

Exit codes: 0 every set resolves, 1 a set does not (pip's message is printed).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON_VERSION = "3.11"  # Raspberry Pi OS Bookworm's python3
GLIBC_MINOR = range(17, 37)  # manylinux_2_17 .. manylinux_2_36 (Bookworm's glibc)
PLATFORMS = ["manylinux2014_aarch64", *(f"manylinux_2_{m}_aarch64" for m in GLIBC_MINOR)]
# The Pi keeps apt's numpy (install.sh pins pip to it): resolve the pi set the same way.
BOOKWORM_NUMPY = "1.24.2"
PINS = {"pi": [f"numpy=={BOOKWORM_NUMPY}"]}


def pip(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """``python -m pip ARGS`` (output captured), echoing the command."""
    cmd = [sys.executable, "-m", "pip", *args]
    print("$ " + shlex.join(cmd[:8]) + (" ..." if len(cmd) > 8 else ""), flush=True)
    return subprocess.run(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def build_wheel(out: Path) -> Path:
    """edgekit's own (pure Python) wheel, built from this checkout."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("edgekit-*.whl"):
        old.unlink()
    proc = pip("wheel", "--no-deps", "-q", "-w", str(out), str(REPO))
    if proc.returncode != 0:
        print(proc.stdout)
        raise SystemExit(f"arm64-wheels: building edgekit's wheel failed ({proc.returncode})")
    wheels = sorted(out.glob("edgekit-*.whl"))
    if not wheels:
        raise SystemExit("arm64-wheels: pip wheel wrote no edgekit wheel")
    return wheels[-1]


def download(wheel: Path, extra: str, dest: Path) -> list[str]:
    """Resolve ``edgekit[extra]`` for aarch64/cp311 into the empty folder ``dest``; returns the
    wheel file names (pip saves only the resolved set there, not candidates it backtracked)."""
    platform_args = [arg for p in PLATFORMS for arg in ("--platform", p)]
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):
        old.unlink()
    proc = pip(
        "download",
        "--only-binary=:all:",
        *platform_args,
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        "--abi",
        "cp311",
        "--abi",
        "abi3",
        "--abi",
        "none",
        "-d",
        str(dest),
        f"{wheel}[{extra}]",
        *PINS.get(extra, []),
    )
    if proc.returncode != 0:
        print(proc.stdout)
        raise RuntimeError(f"edgekit[{extra}] does not resolve to aarch64 wheels")
    return sorted(p.name for p in dest.glob("*.whl"))


def describe(name: str) -> str:
    """``package version tags`` from a wheel file name."""
    parts = name[: -len(".whl")].split("-")
    return f"{parts[0]:<28} {parts[1]:<12} {'-'.join(parts[-3:])}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="folder for the wheelhouses (default: a temp one)")
    ap.add_argument("--sets", nargs="+", default=["device", "pi"])
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="edgekit-arm64-") as tmp:
        out = args.out or Path(tmp)
        wheel = build_wheel(out / "edgekit-wheel")
        failed = []
        for extra in args.sets:
            try:
                names = download(wheel, extra, out / extra)
            except RuntimeError as exc:
                failed.append(str(exc))
                continue
            bad = [n for n in names if not (n.endswith("-any.whl") or "aarch64" in n)]
            pins = (
                f" with {', '.join(PINS[extra])} (apt's, as install.sh pins it)"
                if extra in PINS
                else ""
            )
            print(f"\nedgekit[{extra}] for aarch64 / cp{PYTHON_VERSION.replace('.', '')}{pins}:")
            for name in names:
                print("  " + describe(name))
            if bad:
                failed.append(f"edgekit[{extra}]: not aarch64 wheels: {', '.join(bad)}")
        for failure in failed:
            print(f"arm64-wheels: FAIL: {failure}", file=sys.stderr)
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
