"""What a flash target is: a whole disk or a partition, its size, whether it is removable,
mounted, or holds ``/``. Read from sysfs and procfs under an injectable root, so tests run
against a fake ``sys``/``proc`` tree (and a fake ``rdev`` for a regular file standing in for a
device) instead of real hardware.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class BlockDevice:
    """A flash target. ``is_block`` is ``False`` for a regular file (an image file target)."""

    path: str
    is_block: bool
    name: str = ""
    dev: str = ""  # "major:minor"
    size_bytes: int | None = None
    removable: bool = True
    is_partition: bool = False
    parent: str = ""  # the whole disk's name when ``is_partition``
    related_devs: frozenset[str] = frozenset()  # this disk, its partitions, their holders
    partitions: tuple[str, ...] = ()  # names of the disk's partitions (sdb1, mmcblk0p1)
    model: str = ""


@dataclass(frozen=True)
class Mount:
    """One mounted filesystem: its ``major:minor``, source and mount point."""

    dev: str
    source: str
    mountpoint: str


class BlockDeviceInfo(Protocol):
    """What :func:`edgekit.deploy.flash.check_target` needs to know about the machine."""

    def describe(self, path: Path) -> BlockDevice: ...

    def mounts(self) -> list[Mount]: ...

    def root_disks(self) -> set[str]: ...


def _stat_rdev(path: Path) -> tuple[int, int] | None:
    st = os.stat(path)
    if not stat.S_ISBLK(st.st_mode):
        return None
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def _unescape(field: str) -> str:
    """Undo the octal escapes (``\\040`` for a space) of /proc/mounts and mountinfo."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


class SysfsBlockDeviceInfo:
    """:class:`BlockDeviceInfo` from ``ROOT/sys`` and ``ROOT/proc`` (``ROOT`` is ``/`` for real).

    ``rdev`` maps a target path to its ``(major, minor)`` (``None`` for a regular file); tests
    inject one that makes a regular file look like a disk of the fake sysfs.
    """

    def __init__(
        self,
        root: str | Path = "/",
        *,
        rdev: Callable[[Path], tuple[int, int] | None] = _stat_rdev,
    ) -> None:
        self.root = Path(root)
        self._rdev = rdev

    def _read(self, path: Path) -> str | None:
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError:
            return None

    def _sys_node(self, dev: str) -> Path | None:
        link = self.root / "sys" / "dev" / "block" / dev
        if not link.exists():
            return None
        return link.resolve()

    def _holders(self, node: Path) -> set[str]:
        """``major:minor`` of the device-mapper/md devices stacked on ``node``, recursively."""
        out: set[str] = set()
        holders = node / "holders"
        if holders.is_dir():
            for h in holders.iterdir():
                hnode = h.resolve()
                dev = self._read(hnode / "dev")
                if dev:
                    out.add(dev)
                out |= self._holders(hnode)
        return out

    def describe(self, path: Path) -> BlockDevice:
        path = Path(path)
        if not path.exists():
            return BlockDevice(path=str(path), is_block=False)
        rdev = self._rdev(path)
        if rdev is None:
            return BlockDevice(path=str(path), is_block=False, size_bytes=None)
        dev = f"{rdev[0]}:{rdev[1]}"
        node = self._sys_node(dev)
        if node is None:
            return BlockDevice(
                path=str(path), is_block=True, dev=dev, size_bytes=0, removable=False
            )
        is_partition = (node / "partition").exists()
        disk = node.parent if is_partition else node
        sectors = self._read(node / "size")
        related = {dev, *self._holders(node)}
        partitions = []
        if not is_partition:
            for child in sorted(node.iterdir()):
                if (child / "partition").exists():
                    partitions.append(child.name)
                    child_dev = self._read(child / "dev")
                    if child_dev:
                        related.add(child_dev)
                    related |= self._holders(child)
        return BlockDevice(
            path=str(path),
            is_block=True,
            name=node.name,
            dev=dev,
            size_bytes=int(sectors) * 512 if sectors and sectors.isdigit() else 0,
            removable=self._read(disk / "removable") == "1",
            is_partition=is_partition,
            parent=disk.name if is_partition else "",
            related_devs=frozenset(related),
            partitions=tuple(partitions),
            model=(self._read(disk / "device" / "model") or "").strip(),
        )

    def mounts(self) -> list[Mount]:
        """Mounted filesystems from ``/proc/self/mountinfo`` (``major:minor`` included), plus
        sources from ``/proc/mounts`` (device paths) when mountinfo is unavailable."""
        out: list[Mount] = []
        text = self._read(self.root / "proc" / "self" / "mountinfo")
        for line in (text or "").splitlines():
            parts = line.split()
            if len(parts) < 10 or "-" not in parts:
                continue
            sep = parts.index("-")
            out.append(Mount(parts[2], _unescape(parts[sep + 2]), _unescape(parts[4])))
        text = self._read(self.root / "proc" / "mounts")
        for line in (text or "").splitlines():
            parts = line.split()
            if len(parts) >= 2:
                out.append(Mount("", _unescape(parts[0]), _unescape(parts[1])))
        return out

    def _disks_of(self, dev: str, seen: set[str] | None = None) -> set[str]:
        """Whole-disk names under ``dev`` (through partitions and dm/md slaves)."""
        seen = seen if seen is not None else set()
        if dev in seen:
            return set()
        seen.add(dev)
        node = self._sys_node(dev)
        if node is None:
            return set()
        slaves = node / "slaves"
        if slaves.is_dir() and any(slaves.iterdir()):
            out: set[str] = set()
            for s in slaves.iterdir():
                sdev = self._read(s.resolve() / "dev")
                if sdev:
                    out |= self._disks_of(sdev, seen)
            return out
        return {node.parent.name if (node / "partition").exists() else node.name}

    def root_disks(self) -> set[str]:
        """Names of the disk(s) holding ``/`` (empty when ``/`` is not on a block device)."""
        root_dev = ""
        for m in self.mounts():
            if m.mountpoint == "/" and m.dev:
                root_dev = m.dev  # the last one is what / is now
        return self._disks_of(root_dev) if root_dev else set()
