"""Fixtures for the deploy tests: a fake model, real disk images (sfdisk + mkfs.vfat +
mtools), and a fake sysfs/procfs tree standing in for block devices."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

MiB = 1 << 20
FAT_START = 2048  # sectors: 1 MiB, like Raspberry Pi OS images
FAT_SECTORS = 36 * MiB // 512  # smallest comfortable FAT32 with 512-byte clusters


def need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt install mtools dosfstools fdisk)")


@pytest.fixture
def fake_model(tmp_path: Path) -> Path:
    """A file with the TFLite flatbuffer identifier (bundling checks only that)."""
    path = tmp_path / "detect_int8.tflite"
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(range(256)) * 4)
    return path


def build_disk_image(
    path: Path, *, table: str = "dos", files: dict[str, bytes] | None = None, root_mib: int = 4
) -> Path:
    """A disk image like Raspberry Pi OS's: partition 1 FAT32 'bootfs' holding ``files``,
    partition 2 a (blank) Linux root. ``table`` is ``dos`` (MBR) or ``gpt``."""
    need("sfdisk", "mkfs.vfat", "mcopy")
    total = (FAT_START + FAT_SECTORS) * 512 + root_mib * MiB + (MiB if table == "gpt" else 0)
    with open(path, "wb") as f:
        f.truncate(total)
    fat_type = "c" if table == "dos" else "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
    root_type = "83" if table == "dos" else "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
    script = (
        f"label: {table}\n"
        f"start={FAT_START}, size={FAT_SECTORS}, type={fat_type}\n"
        f"start={FAT_START + FAT_SECTORS}, size={root_mib * MiB // 512 - 2048}, type={root_type}\n"
    )
    subprocess.run(["sfdisk", "-q", str(path)], input=script.encode(), check=True)
    fat = path.with_suffix(".fat")
    with open(fat, "wb") as f:
        f.truncate(FAT_SECTORS * 512)
    subprocess.run(
        ["mkfs.vfat", "-F", "32", "-s", "1", "-n", "BOOTFS", str(fat)],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    for name, data in (files or {}).items():
        src = path.parent / f".src-{name}"
        src.write_bytes(data)
        subprocess.run(["mcopy", "-i", str(fat), str(src), f"::/{name}"], check=True, env=env)
        src.unlink()
    with open(fat, "rb") as fin, open(path, "r+b") as fout:
        fout.seek(FAT_START * 512)
        shutil.copyfileobj(fin, fout)
    fat.unlink()
    # something recognisable in the root partition, to check the whole image is copied
    with open(path, "r+b") as fout:
        fout.seek((FAT_START + FAT_SECTORS) * 512 + 4096)
        fout.write(b"ROOTFS-MARKER")
    return path


def read_fat_file(image: Path, name: str, offset: int = FAT_START * 512) -> bytes:
    """Read ``name`` from the FAT partition of ``image`` with mtools' own ``mtype``."""
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    proc = subprocess.run(
        ["mtype", "-i", f"{image}@@{offset}", f"::/{name}"], capture_output=True, env=env
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


@pytest.fixture
def build_image():
    """:func:`build_disk_image` (fixtures, not imports: ``conftest`` names clash across dirs)."""
    return build_disk_image


@pytest.fixture
def fat_read():
    """:func:`read_fat_file`."""
    return read_fat_file


PI_BOOT_FILES = {
    "cmdline.txt": b"console=serial0,115200 console=tty1 root=PARTUUID=1234-02 rootfstype=ext4 fsck.repair=yes rootwait\n",
    "config.txt": b"# For more options and information see\n# http://rptl.io/configtxt\ndtparam=audio=on\n",
}


@pytest.fixture
def pi_image(tmp_path: Path) -> Path:
    """An MBR image with a FAT32 boot partition holding cmdline.txt/config.txt (firstrun route)."""
    return build_disk_image(tmp_path / "raspios.img", files=PI_BOOT_FILES)


@pytest.fixture
def pi_cloudinit_image(tmp_path: Path) -> Path:
    """Like ``pi_image`` with the default cloud-init files of late-2025 images."""
    files = {
        **PI_BOOT_FILES,
        "user-data": b"#cloud-config\n",
        "meta-data": b"instance-id: rpios-image\n",
        "network-config": b"network:\n  version: 2\n",
    }
    return build_disk_image(tmp_path / "raspios-ci.img", files=files)


class FakeSys:
    """A fake ``/sys`` + ``/proc`` tree: disks with partitions, sizes, removable flags,
    mounts; ``rdev`` maps stand-in files to ``major:minor``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.rdevs: dict[str, tuple[int, int]] = {}
        (root / "sys" / "dev" / "block").mkdir(parents=True)
        (root / "sys" / "block").mkdir(parents=True)
        (root / "proc" / "self").mkdir(parents=True)
        self.mountinfo: list[str] = []
        self.mounts_lines: list[str] = []
        self._write_mounts()

    def _node(self, rel: str, dev: str, size_sectors: int) -> Path:
        node = self.root / "sys" / "devices" / rel
        node.mkdir(parents=True, exist_ok=True)
        (node / "dev").write_text(dev + "\n")
        (node / "size").write_text(f"{size_sectors}\n")
        link = self.root / "sys" / "dev" / "block" / dev
        link.symlink_to(os.path.relpath(node, link.parent))
        return node

    def add_disk(
        self, name: str, major: int, *, size: int, removable: bool = True, partitions: int = 2
    ) -> Path:
        node = self._node(f"virtual/block/{name}", f"{major}:0", size // 512)
        (node / "removable").write_text("1\n" if removable else "0\n")
        (node / "device").mkdir()
        (node / "device" / "model").write_text("Fake SD Reader\n")
        (self.root / "sys" / "block" / name).symlink_to(
            os.path.relpath(node, self.root / "sys" / "block")
        )
        for i in range(1, partitions + 1):
            pnode = self._node(f"virtual/block/{name}/{name}{i}", f"{major}:{i}", size // 1024)
            (pnode / "partition").write_text(f"{i}\n")
        return node

    def attach(self, path: Path, major: int, minor: int = 0) -> None:
        """Make the regular file ``path`` look like block device ``major:minor``."""
        self.rdevs[str(path)] = (major, minor)

    def mount(self, dev: str, source: str, mountpoint: str) -> None:
        n = len(self.mountinfo) + 20
        self.mountinfo.append(f"{n} 1 {dev} / {mountpoint} rw,relatime shared:1 - ext4 {source} rw")
        self.mounts_lines.append(f"{source} {mountpoint} ext4 rw,relatime 0 0")
        self._write_mounts()

    def _write_mounts(self) -> None:
        (self.root / "proc" / "self" / "mountinfo").write_text("\n".join(self.mountinfo) + "\n")
        (self.root / "proc" / "mounts").write_text("\n".join(self.mounts_lines) + "\n")

    def info(self):
        from edgekit.deploy.blockdev import SysfsBlockDeviceInfo

        return SysfsBlockDeviceInfo(self.root, rdev=lambda p: self.rdevs.get(str(p)))


@pytest.fixture
def fake_sys(tmp_path: Path) -> FakeSys:
    fs = FakeSys(tmp_path / "fakeroot")
    # the running system: / on nvme0n1p2
    fs.add_disk("nvme0n1", 259, size=256 << 30, removable=False)
    fs.mount("259:2", "/dev/nvme0n1p2", "/")
    return fs
