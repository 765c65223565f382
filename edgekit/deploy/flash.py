"""Flash an OS image to an SD card / USB disk with first-boot provisioning injected.

Steps (:func:`flash`): refuse unsafe targets (mounted, holds ``/``, a partition, not removable
without ``force``), decompress the image into a private temp copy (the source is never
touched), write first-boot files into its FAT boot partition, check the target is big enough,
confirm, write with ``fsync``, then read the range back and compare (sha256 and first
differing offset).

Secrets: the Wi-Fi passphrase is turned into the WPA pre-shared key
(``PBKDF2-HMAC-SHA1(passphrase, ssid, 4096, 32)``) at once; only that hex key is written, only
into the image, and it never reaches logs or reprs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.deploy.blockdev import BlockDevice, BlockDeviceInfo, SysfsBlockDeviceInfo
from edgekit.deploy.config import DeployConfig
from edgekit.deploy.image import CHUNK, FatPartition, decompress_to, find_boot_partition
from edgekit.deploy.render import board, read_static, render
from edgekit.errors import DeployError, UnsafeTargetError, UsageError

log = logging.getLogger(__name__)

ROUTES = ("auto", "cloud-init", "firstrun")
CMDLINE_HOOK = (
    "systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot "
    "systemd.unit=kernel-command-line.target"
)
CAMERA_MARKER = "# >>> edgekit camera"
Progress = Callable[[str, int, int], None]  # (phase, done, total)


def wpa_psk(passphrase: str, ssid: str) -> str:
    """The WPA/WPA2 pre-shared key (64 hex digits) for ``passphrase`` on ``ssid``; a 64-hex
    ``passphrase`` is taken as an already derived key."""
    if re.fullmatch(r"[0-9a-fA-F]{64}", passphrase):
        return passphrase.lower()
    if not 8 <= len(passphrase) <= 63 or not all(32 <= ord(c) < 127 for c in passphrase):
        raise UsageError("the Wi-Fi passphrase must be 8 to 63 printable ASCII characters")
    key = hashlib.pbkdf2_hmac("sha1", passphrase.encode(), ssid.encode(), 4096, 32)
    return key.hex()


@dataclass(frozen=True)
class WifiConfig:
    """A Wi-Fi network. ``psk_hex`` is the derived key, kept out of ``repr``."""

    ssid: str
    psk_hex: str = field(repr=False)
    country: str | None = None

    @classmethod
    def from_passphrase_file(cls, ssid: str, path: str | Path, country: str | None) -> WifiConfig:
        """Read the passphrase from the first line of ``path`` and derive the key."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: cannot read the Wi-Fi passphrase file") from exc
        passphrase = text.splitlines()[0] if text else ""
        return cls.create(ssid, passphrase, country)

    @classmethod
    def create(cls, ssid: str, passphrase: str, country: str | None) -> WifiConfig:
        raw = ssid.encode()
        if not 1 <= len(raw) <= 32 or any(ord(c) < 32 or ord(c) == 127 for c in ssid):
            raise UsageError("the Wi-Fi SSID must be 1 to 32 bytes without control characters")
        if country is not None and not re.fullmatch(r"[A-Z]{2}", country):
            raise UsageError(f"Wi-Fi country must be two capital letters (GB, US), got {country!r}")
        return cls(ssid, wpa_psk(passphrase, ssid), country)


@dataclass(frozen=True)
class FirstBoot:
    """What to provision at first boot. ``route``: ``cloud-init`` (user-data/network-config/
    meta-data), ``firstrun`` (Imager's firstrun.sh + cmdline.txt hook) or ``auto`` (cloud-init
    when the image already carries cloud-init files)."""

    hostname: str | None = None
    ssh_keys: tuple[str, ...] = ()
    wifi: WifiConfig | None = None
    bundle: Path | None = None
    route: str = "auto"


@dataclass(frozen=True)
class FlashConfig:
    """One flash: image, target, first-boot options and the safety switches."""

    image: Path
    device: Path
    first_boot: FirstBoot | None = None
    deploy: DeployConfig = field(default_factory=DeployConfig)
    yes: bool = False
    force: bool = False
    workdir: Path | None = None


@dataclass(frozen=True)
class FlashResult:
    """What was written: bytes, sha256 of the written range, first-boot files injected."""

    device: Path
    size: int
    sha256: str
    injected: tuple[str, ...]
    route: str | None


def check_target(device: Path, info: BlockDeviceInfo, *, force: bool = False) -> BlockDevice:
    """Refuse a target that is mounted (itself or a partition), holds ``/``, is a partition,
    or is not removable (unless ``force``). Raises :class:`UnsafeTargetError`."""
    bd = info.describe(device)
    if not Path(device).exists():
        if Path(device).resolve().parent.is_relative_to("/dev"):
            raise UnsafeTargetError(f"{device}: no such device (is the card reader plugged in?)")
        return bd  # a new image file
    if not bd.is_block:
        if not stat.S_ISREG(os.stat(device).st_mode):
            raise UnsafeTargetError(f"{device}: neither a block device nor a regular file")
        return bd
    if bd.is_partition:
        raise UnsafeTargetError(
            f"{device}: is partition {bd.name} of /dev/{bd.parent}; give the whole disk"
        )
    names = {bd.name, *bd.partitions}
    for m in info.mounts():
        by_dev = m.dev and m.dev in bd.related_devs
        by_path = m.source == str(device) or (
            m.source.startswith("/dev/") and Path(m.source).name in names
        )
        if by_dev or by_path:
            raise UnsafeTargetError(
                f"{device}: {m.source} is mounted on {m.mountpoint}; unmount it first"
            )
    if bd.name in info.root_disks():
        raise UnsafeTargetError(f"{device}: holds the running system's root filesystem (/)")
    if not bd.removable and not force:
        raise UnsafeTargetError(
            f"{device}: is not a removable disk ({bd.model or bd.name}); pass --force if you "
            "are sure it is the SD card reader"
        )
    return bd


def check_size(device: Path, bd: BlockDevice, image_size: int) -> None:
    """Refuse a block device smaller than the image."""
    if bd.is_block and (bd.size_bytes or 0) < image_size:
        raise UnsafeTargetError(
            f"{device}: too small ({bd.size_bytes or 0} B) for the image ({image_size} B)"
        )


def _choose_route(fat: FatPartition, route: str) -> str:
    if route not in ROUTES:
        raise UsageError(f"first-boot route must be one of {', '.join(ROUTES)}, got {route!r}")
    if route != "auto":
        return route
    names = {n.lower() for n in fat.list()}
    return "cloud-init" if names & {"user-data", "meta-data", "network-config"} else "firstrun"


def inject_first_boot(image: Path, fb: FirstBoot, cfg: DeployConfig) -> tuple[str, tuple[str, ...]]:
    """Write the first-boot files into ``image``'s FAT boot partition. Returns the route used
    and the names written."""
    part = find_boot_partition(image)
    fat = FatPartition(image, part.offset)
    route = _choose_route(fat, fb.route)
    hostname = fb.hostname or cfg.hostname
    ctx = {"hostname": hostname, "ssh_keys": fb.ssh_keys, "wifi": fb.wifi, "bundle": fb.bundle}
    written: list[str] = []

    def put(name: str, data: bytes) -> None:
        fat.write(name, data)
        written.append(name)

    if route == "cloud-init":
        user_data = render("raspberrypi/user-data.j2", cfg, **ctx).encode()
        put("user-data", user_data)
        put("network-config", render("raspberrypi/network-config.j2", cfg, **ctx).encode())
        instance = "edgekit-" + hashlib.sha256(user_data).hexdigest()[:16]
        put(
            "meta-data",
            render("raspberrypi/meta-data.j2", cfg, instance_id=instance, **ctx).encode(),
        )
    else:
        put("firstrun.sh", render("raspberrypi/firstrun.sh.j2", cfg, **ctx).encode())
        cmdline = fat.read("cmdline.txt").decode().strip() if fat.exists("cmdline.txt") else ""
        if not cmdline:
            raise DeployError(
                f"{image}: no cmdline.txt in the boot partition for the firstrun hook"
            )
        if "systemd.run=" not in cmdline:
            put("cmdline.txt", f"{cmdline} {CMDLINE_HOOK}\n".encode())
    put("ssh", b"")  # Raspberry Pi OS: an empty 'ssh' file enables the SSH server
    if board(cfg).camera_fragment and fat.exists("config.txt"):
        text = fat.read("config.txt").decode(errors="replace")
        if CAMERA_MARKER not in text:
            fragment = read_static("raspberrypi/config-camera.txt").decode()
            put("config.txt", (text.rstrip("\n") + "\n\n" + fragment).encode())
    if fb.bundle is not None:
        from edgekit.deploy.bundle import verify_bundle

        verify_bundle(fb.bundle)
        fat.write_file("edgekit-bundle.tar.gz", fb.bundle)
        written.append("edgekit-bundle.tar.gz")
        put("edgekit-firstboot.sh", render("raspberrypi/edgekit-firstboot.sh.j2", cfg).encode())
    log.info("first boot (%s): wrote %s into partition %d", route, ", ".join(written), part.index)
    return route, tuple(written)


def write_image(
    src: Path,
    device: Path,
    *,
    size: int,
    progress: Progress | None = None,
    fault_hook: Callable[[Path], None] | None = None,
    block: bool = True,
) -> str:
    """Copy ``size`` bytes of ``src`` to ``device``, ``fsync``, then read back and compare.

    ``fault_hook(device)`` runs between the write and the read-back (tests flip a byte there).
    Returns the sha256 of the written range; raises :class:`DeployError` on a mismatch.
    """
    flags = os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
    flags |= os.O_EXCL if block else os.O_CREAT  # O_EXCL on a block device: EBUSY if in use
    digest = hashlib.sha256()
    try:
        fd = os.open(device, flags, 0o644)
    except OSError as exc:
        raise DeployError(f"{device}: cannot open for writing: {exc.strerror}") from exc
    try:
        with open(src, "rb") as fin:
            done = 0
            while done < size:
                chunk = fin.read(min(CHUNK, size - done))
                if not chunk:
                    raise DeployError(f"{src}: ended after {done} of {size} bytes")
                view = memoryview(chunk)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress("write", done, size)
        if not block:
            os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError as exc:
        raise DeployError(f"{device}: write failed: {exc.strerror}") from exc
    finally:
        os.close(fd)
    expected = digest.hexdigest()
    if fault_hook is not None:
        fault_hook(device)
    got, first_bad = _read_back(src, device, size, progress)
    if got != expected:
        raise DeployError(
            f"{device}: verification failed: read-back sha256 {got[:16]}… != written "
            f"{expected[:16]}… (first difference at byte {first_bad}); the card may be faulty"
        )
    log.info("wrote and verified %d bytes to %s (sha256 %s)", size, device, expected)
    return expected


def _read_back(src: Path, device: Path, size: int, progress: Progress | None) -> tuple[str, int]:
    digest = hashlib.sha256()
    first_bad = -1
    fd = os.open(device, os.O_RDONLY)
    try:
        if hasattr(os, "posix_fadvise"):  # read the medium, not the page cache
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        with open(src, "rb") as fin, os.fdopen(fd, "rb", closefd=False) as fdev:
            done = 0
            while done < size:
                want = min(CHUNK, size - done)
                got = fdev.read(want)
                ref = fin.read(want)
                if first_bad < 0 and got != ref:
                    first_bad = done + next(
                        (i for i, (a, b) in enumerate(zip(got, ref, strict=False)) if a != b),
                        min(len(got), len(ref)),
                    )
                digest.update(got)
                if len(got) < want:
                    break
                done += len(got)
                if progress:
                    progress("verify", done, size)
    finally:
        os.close(fd)
    return digest.hexdigest(), first_bad


def flash(
    cfg: FlashConfig,
    *,
    info: BlockDeviceInfo | None = None,
    confirm: Callable[[str], bool] | None = None,
    progress: Progress | None = None,
    fault_hook: Callable[[Path], None] | None = None,
) -> FlashResult:
    """Flash ``cfg.image`` to ``cfg.device`` (see the module docstring for the steps)."""
    info = info or SysfsBlockDeviceInfo()
    bd = check_target(cfg.device, info, force=cfg.force)
    if Path(cfg.device).resolve() == Path(cfg.image).resolve():
        raise UnsafeTargetError(f"{cfg.device}: is the source image itself")
    with tempfile.TemporaryDirectory(prefix="edgekit-flash-", dir=cfg.workdir) as tmp:
        work = Path(tmp) / "image.img"
        size = decompress_to(cfg.image, work)
        route, injected = None, ()
        if cfg.first_boot is not None:
            route, injected = inject_first_boot(work, cfg.first_boot, cfg.deploy)
        bd = check_target(cfg.device, info, force=cfg.force)  # again: minutes may have passed
        check_size(cfg.device, bd, size)
        what = f"{bd.model or bd.name} " if bd.is_block else ""
        question = f"Erase {cfg.device} ({what}{_human(bd.size_bytes)}) and write {cfg.image.name}?"
        if not cfg.yes and not (confirm and confirm(question)):
            raise DeployError(f"{cfg.device}: not confirmed; nothing written", hint="pass --yes")
        digest = write_image(
            work, cfg.device, size=size, progress=progress, fault_hook=fault_hook, block=bd.is_block
        )
    return FlashResult(Path(cfg.device), size, digest, injected, route)


def _human(n: int | None) -> str:
    if n is None:
        return "file"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"
