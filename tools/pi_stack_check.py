#!/usr/bin/env python3
"""Does ``pip install "edgekit[pi]"`` keep Raspberry Pi OS's own numpy? (issue #11)

Rebuilds the Pi's Python stack on a Debian 12 machine (the base of Raspberry Pi OS Bookworm):
the system ``/usr/bin/python3`` (3.11) with apt's ``python3-numpy`` (1.24) and an apt-built
numpy extension (``python3-scipy``, standing in for picamera2's ``simplejpeg``), a venv made with
``--system-site-packages`` (as picamera2 needs), then ``pip install "<project>[pi]"``. Checks:

1. numpy is still 1.x, and still apt's copy (nothing shadows it in the venv);
2. ``import scipy.ndimage`` (the apt extension) works;
3. the runtime is ai-edge-litert with its ``load_delegate`` (the Edge TPU route);
4. ``edgekit detect`` runs the default model on the ``sample`` source (the generated test card:
   the ``pi`` extra has no matplotlib; ``--bench-runs N`` also runs ``edgekit bench``);
5. then, as install.sh and the README do, numpy pinned to the system's exact version by a
   constraints file, ``pip install matplotlib``: checks 1-3 again, and ``edgekit detect`` on the
   real sample photos (``--no-photos`` skips this).

Standard library only, so it also runs inside an emulated arm64 root
(``tools/pi_emulated_smoke.sh``). Run by ``.ci/run``. Exit codes: 0 all checks pass, 1 a check
failed, 3 the machine lacks the Pi stack (``apt-get install python3-numpy python3-scipy
python3-venv``). Pass ``--project`` a checkout of an older commit to see it fail there.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
APT_HINT = "apt-get install python3-numpy python3-scipy python3-venv"

# Printed by the venv's python: numpy's version and file, then the apt extension's import.
PROBE = """
import numpy
print("numpy", numpy.__version__, numpy.__file__)
try:
    import scipy.ndimage
    print("scipy.ndimage ok", scipy.__version__)
except Exception as exc:
    print("scipy.ndimage FAILED", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
"""
RUNTIME_PROBE = """
from edgekit.runtime.interpreter import resolve_backend
import cv2
b = resolve_backend()
print("backend", b.name, b.version, "load_delegate", getattr(b.load_delegate, "__module__", None))
print("opencv", cv2.__version__)
"""
DEFAULT_MODEL = "from edgekit.app import default_model\nprint(default_model('detect'))"


class CheckFailed(Exception):
    """A check of the Pi stack did not hold."""


class StackMissing(Exception):
    """This machine has no Pi-like stack to check against."""


def run(cmd: list[str], *, timeout: float, env: dict[str, str] | None = None) -> str:
    """Run ``cmd``, echo and return its output (stdout + stderr); raise on a non-zero exit."""
    shown = ["<probe>" if "\n" in arg else arg for arg in cmd]
    print("$ " + shlex.join(shown), flush=True)
    try:
        proc = subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CheckFailed(f"{cmd[0]} timed out after {timeout:.0f} s") from exc
    out = proc.stdout or ""
    if proc.returncode != 0:
        print(out, end="")
        raise CheckFailed(f"{shlex.join(cmd[:4])} ... exited with {proc.returncode}")
    return out


def probe(python: str, code: str, *, isolated: bool = False) -> str:
    """Output of ``python -c code`` (``-I``: ignore the environment and user site)."""
    return run([python, *(["-I"] if isolated else []), "-c", code], timeout=300)


def parse_probe(out: str) -> tuple[str, str, bool, str]:
    """``(numpy version, numpy file, scipy ok, scipy line)`` from :data:`PROBE` output."""
    numpy_line = next((x for x in out.splitlines() if x.startswith("numpy ")), "")
    scipy_line = next((x for x in out.splitlines() if x.startswith("scipy.ndimage")), "")
    parts = numpy_line.split(" ", 2)
    if len(parts) != 3:
        raise CheckFailed(f"numpy did not import: {out.strip()[-300:]}")
    return parts[1], parts[2], scipy_line.startswith("scipy.ndimage ok"), scipy_line


def check_system(python: str) -> tuple[str, str]:
    """The system Python's numpy (version, file); :class:`StackMissing` unless it is a Pi-like
    stack (Python >= 3.10, numpy 1.x, scipy.ndimage importable)."""
    if not Path(python).is_file():
        raise StackMissing(f"{python} not found")
    try:
        out = probe(python, "import sys\nprint(sys.version_info >= (3, 10))" + PROBE, isolated=True)
    except CheckFailed as exc:
        raise StackMissing(f"{python} has no numpy: {exc} ({APT_HINT})") from exc
    if not out.startswith("True"):
        raise StackMissing(f"{python} is older than 3.10")
    version, path, scipy_ok, scipy_line = parse_probe(out)
    if not version.startswith("1."):
        raise StackMissing(f"{python}'s numpy is {version}, not a 1.x like Raspberry Pi OS's")
    if not scipy_ok:
        raise StackMissing(f"{python}: {scipy_line or 'no scipy'} ({APT_HINT})")
    return version, path


def install(venv: Path, python: str, requirement: list[str], pip_args: list[str]) -> str:
    """Make the ``--system-site-packages`` venv and pip-install ``requirement`` into it."""
    run([python, "-m", "venv", "--system-site-packages", str(venv)], timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    started = time.monotonic()
    out = run([*pip, "install", *pip_args, *requirement], timeout=1500)
    print(f"pip install took {time.monotonic() - started:.0f} s", flush=True)
    return out


def check_venv(venv: Path, system_numpy: tuple[str, str]) -> list[str]:
    """Checks 1-3 in the venv; returns the failures (empty: all hold)."""
    python = str(venv / "bin" / "python")
    failures = []
    version, path, scipy_ok, scipy_line = parse_probe(probe(python, PROBE))
    print(f"venv numpy {version} from {path}")
    if not version.startswith("1."):
        failures.append(f"numpy in the venv is {version}, not the system's {system_numpy[0]}")
    elif Path(path).resolve() != Path(system_numpy[1]).resolve():
        failures.append(f"numpy {version} in the venv shadows apt's {system_numpy[0]} ({path})")
    print(scipy_line)
    if not scipy_ok:
        failures.append(f"the apt numpy extension no longer imports: {scipy_line}")
    try:
        out = probe(python, RUNTIME_PROBE)
        print(out, end="")
        if "backend ai_edge_litert" not in out or "load_delegate ai_edge_litert" not in out:
            failures.append("the runtime is not ai-edge-litert with load_delegate")
    except CheckFailed as exc:
        failures.append(f"edgekit's runtime does not import: {exc}")
    return failures


def run_edgekit(venv: Path, max_frames: int, bench_runs: int) -> list[str]:
    """Check 4: ``edgekit detect`` (default model, sample source), then ``edgekit bench``."""
    edgekit = str(venv / "bin" / "edgekit")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    failures = []
    try:
        out = run(
            [edgekit, "detect", "--no-display", "--max-frames", str(max_frames)],
            timeout=1800,
            env=env,
        )
        print(out, end="")
        if " frames in " not in out:
            failures.append("edgekit detect printed no summary")
    except CheckFailed as exc:
        failures.append(f"edgekit detect failed: {exc}")
    if bench_runs:
        try:
            model = probe(str(venv / "bin" / "python"), DEFAULT_MODEL).strip()
            out = run(
                [edgekit, "bench", model, "--runs", str(bench_runs), "--warmup", "1"],
                timeout=1800,
                env=env,
            )
            print(out, end="")
        except CheckFailed as exc:
            failures.append(f"edgekit bench failed: {exc}")
    return failures


def photos_phase(venv: Path, system_numpy: tuple[str, str], max_frames: int) -> list[str]:
    """What install.sh and the README do for extras: pin numpy to the system's exact version
    (a constraints file), then add matplotlib (the sample photos, ``bench --plot``); numpy must
    stay apt's and ``edgekit detect`` must now run on the real sample photos."""
    pin = venv / "numpy-pin.txt"
    pin.write_text(f"numpy=={system_numpy[0]}\n")
    install_out = run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-c", str(pin), "matplotlib"],
        timeout=1500,
    )
    installed = [x for x in install_out.splitlines() if x.startswith("Successfully installed")]
    print(installed[0] if installed else "matplotlib already installed")
    failures = check_venv(venv, system_numpy)
    edgekit = str(venv / "bin" / "edgekit")
    try:
        out = run(
            [edgekit, "detect", "--no-display", "--max-frames", str(max_frames)], timeout=1800
        )
        print(out, end="")
        if "; source sample" not in out or "generated" in out:
            failures.append("with matplotlib installed, edgekit detect did not use the photos")
    except CheckFailed as exc:
        failures.append(f"edgekit detect (photos) failed: {exc}")
    return failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default="/usr/bin/python3", help="the system Python (apt's)")
    ap.add_argument("--project", type=Path, default=REPO, help="edgekit checkout to install")
    ap.add_argument(
        "--requirement",
        help='what to pip-install instead of "<project>[pi]" (e.g. "edgekit[pi]" with --pip-args)',
    )
    ap.add_argument("--pip-args", default="", help="extra pip arguments (e.g. --no-index ...)")
    ap.add_argument("--venv", type=Path, help="where to make the venv (default: a temp folder)")
    ap.add_argument("--max-frames", type=int, default=6)
    ap.add_argument("--bench-runs", type=int, default=0, help="also run edgekit bench")
    ap.add_argument(
        "--no-photos", action="store_true", help="skip adding matplotlib with numpy pinned"
    )
    args = ap.parse_args(argv)

    try:
        system_numpy = check_system(args.python)
    except (StackMissing, CheckFailed) as exc:
        print(f"pi-stack: not a Raspberry Pi OS-like stack here: {exc}", file=sys.stderr)
        return 3
    print(f"system numpy {system_numpy[0]} from {system_numpy[1]}", flush=True)
    requirement = [args.requirement or f"{args.project.resolve()}[pi]"]
    with tempfile.TemporaryDirectory(prefix="edgekit-pi-") as tmp:
        venv = args.venv or Path(tmp) / "venv"
        try:
            install(venv, args.python, requirement, shlex.split(args.pip_args))
            failures = check_venv(venv, system_numpy)
            failures += run_edgekit(venv, args.max_frames, args.bench_runs)
            if not args.no_photos and not failures:
                print("-- adding matplotlib with numpy pinned to the system's", flush=True)
                failures += photos_phase(venv, system_numpy, args.max_frames)
        except CheckFailed as exc:
            failures = [str(exc)]
    for failure in failures:
        print(f"pi-stack: FAIL: {failure}", file=sys.stderr)
    if not failures:
        print("pi-stack: OK: system numpy kept, apt extension imports, edgekit detect runs")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
