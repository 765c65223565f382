"""Render the files in ``firmware/`` from one :class:`~edgekit.deploy.config.DeployConfig`.

One table (:data:`BOARDS`) says what each board needs (apt packages, device access, groups,
udev rules); the templates (Jinja2, ``StrictUndefined``) only format it. Values are quoted by
filters for the language they land in: ``shquote`` (POSIX sh), ``sdquote`` (systemd unit),
``tojson`` (YAML: JSON is YAML).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from edgekit.deploy.config import DeployConfig
from edgekit.errors import DeployError

CORAL_APT_LINE = (
    "deb [signed-by=/etc/apt/keyrings/coral-edgetpu.gpg] "
    "https://packages.cloud.google.com/apt coral-edgetpu-stable main"
)
CORAL_KEY_URL = "https://packages.cloud.google.com/apt/doc/apt-key.gpg"
UNIT_NAME = "edgekit.service"


@dataclass(frozen=True)
class Board:
    """What one board needs. ``device_allow`` entries go to systemd ``DeviceAllow=``."""

    name: str
    os: str
    apt_packages: tuple[str, ...]
    coral_repo: bool
    groups: tuple[str, ...]
    device_allow: tuple[str, ...]
    udev_rules: tuple[str, ...]
    camera_fragment: bool
    systemd: int  # systemd version of the OS (unit directives newer than it are left out)


_PI_CAMERA_DEVICES = (
    "char-video4linux rw",  # /dev/video*, /dev/v4l-subdev*
    "char-media rw",  # /dev/media* (libcamera)
    "char-dma_heap rw",  # /dev/dma_heap/* (libcamera buffers)
    "/dev/vchiq rw",
)
# python3-numpy is listed although picamera2 pulls it in: install.sh pins pip to its version.
_PI_PACKAGES = ("python3-numpy", "python3-picamera2", "python3-libcamera", "python3-venv")

BOARDS: dict[str, Board] = {
    "rpi5": Board(
        "rpi5", "Raspberry Pi OS Bookworm", _PI_PACKAGES, False, ("video",),
        _PI_CAMERA_DEVICES, (), True, 252,
    ),
    "rpi4": Board(
        "rpi4", "Raspberry Pi OS Bookworm", _PI_PACKAGES, False, ("video",),
        _PI_CAMERA_DEVICES, (), True, 252,
    ),
    "coral-usb": Board(
        "coral-usb", "Raspberry Pi OS Bookworm + Coral USB Accelerator",
        (*_PI_PACKAGES, "libedgetpu1-std"), True, ("video", "plugdev"),
        (*_PI_CAMERA_DEVICES, "char-usb_device rw"),  # libusb opens /dev/bus/usb/BBB/DDD
        ("99-edgetpu-accelerator.rules",), True, 252,
    ),
    "coral-devboard": Board(
        "coral-devboard", "Mendel Linux (Coral Dev Board / Dev Board Mini)",
        ("python3-venv", "libedgetpu1-std"), False, ("video", "apex"),
        ("char-video4linux rw", "char-media rw", "/dev/apex_0 rw", "char-apex rw"),
        (), False, 241,  # Mendel Eagle/Day: Debian 10
    ),
}  # fmt: skip

# ``outputs`` entries -> arguments of the service's ``edgekit <task>`` (edgekit/cli/run.py).
OUTPUT_ARGS: dict[str, tuple[str, str]] = {
    "jsonl": ("--jsonl", "results.jsonl"),
    "video": ("--save", "annotated.mp4"),
}


def firmware_dir() -> Path:
    """The ``firmware/`` folder: ``$EDGEKIT_FIRMWARE``, else the copy inside the package
    (``edgekit/_firmware``: a link to the top-level ``firmware/`` in a source checkout, the
    files themselves in an installed wheel)."""
    env = os.environ.get("EDGEKIT_FIRMWARE")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "_firmware"
    if not (path / "common" / "edgekit.service.j2").is_file():
        raise DeployError(
            f"{path}: not an edgekit firmware folder (no common/edgekit.service.j2)",
            hint="set EDGEKIT_FIRMWARE to a checkout's firmware/ folder",
        )
    return path


def board(cfg: DeployConfig) -> Board:
    """The :class:`Board` entry of ``cfg.board``."""
    return BOARDS[cfg.board]


def sdquote(value: object) -> str:
    """Quote one word for a systemd ``ExecStart=``/``Environment=`` line."""
    s = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    s = s.replace("$", "$$").replace("\n", "\\n")
    return f'"{s}"'


def app_command(cfg: DeployConfig) -> list[str]:
    """The command line the service runs (absolute paths on the board)."""
    prefix = PurePosixPath(cfg.install.prefix)
    cmd = [str(prefix / "venv" / "bin" / "edgekit"), cfg.task]
    for name in cfg.model_names[:1]:
        cmd += ["--model", str(prefix / "models" / name)]
    if cfg.source.startswith("camera"):  # "camera" or "camera:N"
        cmd += ["--camera", cfg.source.partition(":")[2] or "0"]
    else:
        cmd += ["--source", cfg.source]
    cmd += ["--score", f"{cfg.thresholds.score:g}", "--no-display", "--quiet"]
    cmd += ["--on-output-error", cfg.service.on_output_error]
    for out in cfg.outputs:
        flag, target = OUTPUT_ARGS[out]
        cmd += [flag, str(PurePosixPath(cfg.service.output_dir) / target)]
    return cmd + list(cfg.service.extra_args)


def _environment():
    try:
        import jinja2
    except ImportError as exc:  # pragma: no cover - jinja2 is in the deploy extra
        from edgekit.errors import DependencyMissing

        raise DependencyMissing(
            "jinja2 is needed to render deployment files", hint="pip install 'edgekit[deploy]'"
        ) from exc
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(firmware_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["shquote"] = lambda v: shlex.quote(str(v))
    env.filters["sdquote"] = sdquote
    return env


def render(template: str, cfg: DeployConfig, **extra: object) -> str:
    """Render ``firmware/<template>`` with ``cfg``, its board and ``extra`` variables."""
    context = {
        "cfg": cfg,
        "board": board(cfg),
        "app_command": app_command(cfg),
        "coral_apt_line": CORAL_APT_LINE,
        "coral_key_url": CORAL_KEY_URL,
        **extra,
    }
    return _environment().get_template(template).render(**context)


def read_static(relpath: str) -> bytes:
    """A file from ``firmware/`` copied as is (udev rules, config.txt fragment)."""
    return (firmware_dir() / relpath).read_bytes()


def board_files(cfg: DeployConfig) -> dict[str, tuple[bytes, int]]:
    """Files the bundle installs, as ``{absolute path on the board: (content, mode)}``."""
    b = board(cfg)
    files: dict[str, tuple[bytes, int]] = {
        f"/etc/systemd/system/{UNIT_NAME}": (
            render("common/edgekit.service.j2", cfg).encode(),
            0o644,
        ),
        "/usr/lib/sysusers.d/edgekit.conf": (
            render("common/sysusers.conf.j2", cfg).encode(),
            0o644,
        ),
    }
    for rule in b.udev_rules:
        files[f"/etc/udev/rules.d/{rule}"] = (read_static(f"raspberrypi/{rule}"), 0o644)
    if b.coral_repo:
        files["/etc/apt/sources.list.d/coral-edgetpu.list"] = (
            (CORAL_APT_LINE + "\n").encode(),
            0o644,
        )
    return files
