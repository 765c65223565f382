"""Disk images: streamed decompression (.img, .img.xz, .zip), the partition table (MBR and
GPT, parsed here), and files inside a FAT boot partition through mtools (``mcopy -i
image@@offset``), so nothing needs root or a mount.
"""

from __future__ import annotations

import contextlib
import lzma
import os
import shutil
import struct
import subprocess
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from edgekit.errors import DependencyMissing, DeployError

SECTOR = 512
CHUNK = 4 << 20
# MBR type codes of FAT partitions (FAT12/16/32, CHS/LBA) and GPT "basic data" / "EFI system".
FAT_MBR_TYPES = {0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E, 0xEF}
GPT_FAT_TYPES = {
    "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7",  # Microsoft basic data
    "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",  # EFI system partition
}


@dataclass(frozen=True)
class Partition:
    """One partition: 1-based ``index``, byte ``offset`` and ``size``, MBR type (``0x0c``) or
    GPT type GUID, and the filesystem found in its first sector (``fat32``, ``fat16``, …)."""

    index: int
    offset: int
    size: int
    type: str
    fs: str | None


def image_kind(path: Path) -> str:
    """``img``, ``xz`` or ``zip`` from the file name (and magic bytes for a bare name)."""
    name = path.name.lower()
    with open(path, "rb") as f:
        magic = f.read(6)
    if name.endswith(".xz") or magic == b"\xfd7zXZ\x00":
        return "xz"
    if name.endswith(".zip") or magic[:4] == b"PK\x03\x04":
        return "zip"
    return "img"


@contextlib.contextmanager
def open_image(path: str | Path) -> Iterator[BinaryIO]:
    """Open a raw, ``.xz`` or ``.zip`` image as a stream of raw disk bytes (decompressed on the
    fly). A ``.zip`` must hold exactly one ``.img``."""
    path = Path(path)
    if not path.is_file():
        raise DeployError(f"{path}: no such image file")
    kind = image_kind(path)
    if kind == "xz":
        with lzma.open(path, "rb") as f:
            yield f
    elif kind == "zip":
        try:
            zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise DeployError(f"{path}: not a valid .zip") from exc
        with zf:
            imgs = [i for i in zf.infolist() if i.filename.lower().endswith(".img")]
            if len(imgs) != 1:
                raise DeployError(
                    f"{path}: expected exactly one .img inside the zip, found {len(imgs)}"
                )
            with zf.open(imgs[0]) as f:
                yield f
    else:
        with open(path, "rb") as f:
            yield f


def decompress_to(src: str | Path, dst: str | Path) -> int:
    """Stream ``src`` (any :func:`open_image` kind) into the new file ``dst``; zero chunks
    become holes (sparse). Returns the image size in bytes."""
    zero = bytes(CHUNK)
    size = 0
    try:
        with open_image(src) as fin, open(dst, "wb") as fout:
            while True:
                chunk = fin.read(CHUNK)
                if not chunk:
                    break
                if chunk == zero[: len(chunk)]:
                    fout.seek(len(chunk), os.SEEK_CUR)
                else:
                    fout.write(chunk)
                size += len(chunk)
            fout.truncate(size)
    except (lzma.LZMAError, zipfile.BadZipFile, EOFError) as exc:
        raise DeployError(f"{src}: corrupt compressed image: {exc}") from exc
    if size == 0:
        raise DeployError(f"{src}: image is empty")
    return size


def _fs_type(boot_sector: bytes) -> str | None:
    if len(boot_sector) < 512 or boot_sector[510:512] != b"\x55\xaa":
        return None
    if boot_sector[82:90] == b"FAT32   ":
        return "fat32"
    if boot_sector[54:62] in (b"FAT16   ", b"FAT12   ", b"FAT     "):
        return boot_sector[54:59].decode().strip().lower() or "fat"
    return None


def _guid(raw: bytes) -> str:
    return str(uuid.UUID(bytes_le=raw))


def read_partitions(image: str | Path) -> list[Partition]:
    """Parse the MBR (or, behind a protective MBR, the GPT) of a raw disk image."""
    image = Path(image)
    with open(image, "rb") as f:
        total = os.fstat(f.fileno()).st_size
        mbr = f.read(SECTOR)
        if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
            raise DeployError(f"{image}: no partition table (no MBR signature in sector 0)")
        entries = [struct.unpack_from("<B3sB3sII", mbr, 446 + 16 * i) for i in range(4)]
        raw: list[tuple[int, int, int, str]] = []
        if any(e[2] == 0xEE for e in entries):
            f.seek(SECTOR)
            hdr = f.read(92)
            if hdr[:8] != b"EFI PART":
                raise DeployError(f"{image}: protective MBR but no GPT header in sector 1")
            entries_lba, count, entry_size = struct.unpack_from("<QII", hdr, 72)
            if not 128 <= entry_size <= 4096 or count > 1024:
                raise DeployError(f"{image}: implausible GPT header ({count} x {entry_size} B)")
            f.seek(entries_lba * SECTOR)
            table = f.read(count * entry_size)
            for i in range(count):
                e = table[i * entry_size : (i + 1) * entry_size]
                if len(e) < 48 or e[:16] == bytes(16):
                    continue
                first, last = struct.unpack_from("<QQ", e, 32)
                raw.append((i + 1, first, last - first + 1, _guid(e[:16])))
        else:
            for i, (_, _, ptype, _, start, count) in enumerate(entries):
                if ptype in (0x00, 0x05, 0x0F, 0x85):  # empty, or extended (not followed)
                    continue
                raw.append((i + 1, start, count, f"0x{ptype:02x}"))
        out = []
        for index, start, count, ptype in raw:
            offset, size = start * SECTOR, count * SECTOR
            if offset + size > total or size == 0:
                raise DeployError(
                    f"{image}: partition {index} ({offset}+{size} B) runs past the image end ({total} B)"
                )
            f.seek(offset)
            out.append(Partition(index, offset, size, ptype, _fs_type(f.read(SECTOR))))
    return out


def find_boot_partition(image: str | Path) -> Partition:
    """The first FAT partition (Raspberry Pi OS: ``bootfs``, mounted at /boot/firmware)."""
    parts = read_partitions(image)
    for p in parts:
        if p.fs is not None and (
            int(p.type, 16) in FAT_MBR_TYPES if p.type.startswith("0x") else p.type in GPT_FAT_TYPES
        ):
            return p
    for p in parts:  # a FAT filesystem behind an unusual type code
        if p.fs is not None:
            return p
    raise DeployError(
        f"{image}: no FAT boot partition (partitions: "
        + (", ".join(f"{p.index}:{p.type}" for p in parts) or "none")
        + ")"
    )


Runner = Callable[..., subprocess.CompletedProcess]


class FatPartition:
    """Files in the FAT filesystem at ``offset`` of ``image``, through mtools."""

    def __init__(self, image: str | Path, offset: int, *, run: Runner = subprocess.run) -> None:
        if shutil.which("mcopy") is None:
            raise DependencyMissing(
                "mtools (mcopy) is needed to write first-boot files into the image",
                hint="apt install mtools",
            )
        self.image = Path(image)
        self.offset = offset
        self._run = run

    @property
    def _spec(self) -> str:
        return f"{self.image}@@{self.offset}"

    def _mtools(self, *args: str, input: bytes | None = None) -> bytes:
        env = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "MTOOLS_NO_VFAT": "0"}
        proc = self._run(list(args), input=input, capture_output=True, env=env, check=False)
        if proc.returncode != 0:
            msg = proc.stderr.decode(errors="replace").strip().splitlines()
            raise DeployError(
                f"{self.image}: {args[0]} failed (exit {proc.returncode}): "
                + (msg[-1] if msg else "no message")
            )
        return proc.stdout

    def list(self) -> list[str]:
        """Names in the root folder."""
        out = self._mtools("mdir", "-b", "-i", self._spec, "::/")
        return sorted(line.split("/")[-1] for line in out.decode().splitlines() if line.strip())

    def exists(self, name: str) -> bool:
        return name.lower() in {n.lower() for n in self.list()}

    def read(self, name: str) -> bytes:
        return self._mtools("mcopy", "-n", "-i", self._spec, f"::/{name}", "-")

    def write(self, name: str, data: bytes) -> None:
        """Create or replace ``name`` in the root folder."""
        # next to the image: flash keeps its copy in a private (0700) temp folder
        with tempfile.NamedTemporaryFile(
            prefix=".edgekit-", dir=self.image.parent, delete=False
        ) as tmp:
            tmp.write(data)
        try:
            os.chmod(tmp.name, 0o600)
            self._mtools("mcopy", "-o", "-i", self._spec, tmp.name, f"::/{name}")
        finally:
            os.unlink(tmp.name)

    def write_file(self, name: str, src: str | Path) -> None:
        """Copy a host file (e.g. the bundle) into the root folder."""
        self._mtools("mcopy", "-o", "-i", self._spec, str(src), f"::/{name}")
