"""Deployment bundles: one deterministic ``.tar.gz`` with the model(s), ``edgekit.yaml``, the
systemd unit, udev rules, an idempotent ``install.sh`` and ``MANIFEST.sha256``.

Same inputs, same bytes: members sorted, fixed mtime/uid/gid/owner names, gzip header without
name or time. :func:`unpack_bundle` / :func:`verify_bundle` refuse absolute paths, ``..``,
links and devices, and check every file against the manifest (and nothing unlisted).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from edgekit.deploy.config import DeployConfig, config_from_dict, config_to_dict
from edgekit.deploy.render import UNIT_NAME, board, board_files, read_static, render
from edgekit.errors import DeployError

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.sha256"
FIXED_MTIME = 1577836800  # 2020-01-01T00:00:00Z: old enough to be fixed, new enough for tar
MAX_UNPACKED = 1 << 30  # bundles hold a few small models; refuse gzip bombs
_MANIFEST_LINE = re.compile(r"^([0-9a-f]{64})  (\S(?:.*\S)?)$")


@dataclass(frozen=True)
class BundleFile:
    """One file in a bundle: its path inside the archive, bytes and mode."""

    name: str
    data: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class BundleInfo:
    """A written or verified bundle: its path, sha256 and ``{name: sha256}`` of its files."""

    path: Path
    sha256: str
    files: dict[str, str]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_model(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DeployError(f"{path}: cannot read model: {exc.strerror or exc}") from exc
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise DeployError(f"{path}: not a TFLite model (no TFL3 flatbuffer identifier)")
    return data


def bundle_files(cfg: DeployConfig) -> list[BundleFile]:
    """Every file of the bundle for ``cfg`` (models read from ``cfg.models``), manifest last."""
    if not cfg.models:
        raise DeployError("no model to bundle", hint="give --model or 'model:' in edgekit.yaml")
    prefix = PurePosixPath(cfg.install.prefix)
    files: list[BundleFile] = []
    installs: list[dict[str, object]] = []  # what install.sh puts where
    for src, name in zip(cfg.models, cfg.model_names, strict=True):
        files.append(BundleFile(f"models/{name}", _check_model(Path(src))))
        installs.append(
            {"mode": 0o644, "src": f"models/{name}", "dst": str(prefix / "models" / name)}
        )
    cfg_yaml = yaml.safe_dump(config_to_dict(cfg), sort_keys=False).encode()
    files.append(BundleFile("edgekit.yaml", cfg_yaml))
    installs.append({"mode": 0o644, "src": "edgekit.yaml", "dst": "/etc/edgekit/edgekit.yaml"})
    for dst, (data, mode) in sorted(board_files(cfg).items()):
        files.append(BundleFile(f"rootfs{dst}", data, mode))
        installs.append({"mode": mode, "src": f"rootfs{dst}", "dst": dst})
    if board(cfg).camera_fragment:
        files.append(
            BundleFile("firmware/config-camera.txt", read_static("raspberrypi/config-camera.txt"))
        )
    script = render("common/install.sh.j2", cfg, entries=installs, unit_name=UNIT_NAME)
    files.append(BundleFile("install.sh", script.encode(), 0o755))
    files.sort(key=lambda f: f.name)
    manifest = "".join(f"{_sha256(f.data)}  {f.name}\n" for f in files)
    files.append(BundleFile(MANIFEST, manifest.encode()))
    return files


def write_tarball(files: list[BundleFile], out: str | Path) -> str:
    """Write ``files`` as a deterministic ``.tar.gz`` (atomically); returns its sha256."""
    out = Path(out)
    buf = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for f in sorted(files, key=lambda f: f.name):
            info = tarfile.TarInfo(f.name)
            info.size = len(f.data)
            info.mode = f.mode
            info.mtime = FIXED_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(f.data))
    data = buf.getvalue()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return _sha256(data)


def build_bundle(cfg: DeployConfig, out: str | Path) -> BundleInfo:
    """Render and write the bundle for ``cfg`` to ``out``."""
    files = bundle_files(cfg)
    digest = write_tarball(files, out)
    log.info("bundle %s: %d files, sha256 %s", out, len(files), digest)
    return BundleInfo(Path(out), digest, {f.name: _sha256(f.data) for f in files})


def _safe_name(path: Path, name: str) -> str:
    p = PurePosixPath(name)
    if name.startswith("/") or p.is_absolute() or re.match(r"^[A-Za-z]:", name):
        raise DeployError(f"{path}: unsafe member {name!r}: absolute path")
    if ".." in p.parts or "\\" in name or "\0" in name:
        raise DeployError(f"{path}: unsafe member {name!r}: '..' or backslash in path")
    norm = str(p)
    if norm in ("", "."):
        raise DeployError(f"{path}: unsafe member {name!r}: empty path")
    return norm


def _check_member(path: Path, m: tarfile.TarInfo) -> str:
    name = _safe_name(path, m.name)
    if m.issym() or m.islnk():
        target = PurePosixPath(name).parent / m.linkname
        escapes = (
            m.linkname.startswith("/") or ".." in PurePosixPath(os.path.normpath(str(target))).parts
        )
        why = "escapes the bundle" if escapes else "links are not allowed in bundles"
        raise DeployError(f"{path}: unsafe member {name!r} -> {m.linkname!r}: {why}")
    if not (m.isfile() or m.isdir()):
        raise DeployError(f"{path}: unsafe member {name!r}: not a regular file or folder")
    return name


def _read_members(path: Path) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    out: dict[str, tuple[tarfile.TarInfo, bytes]] = {}
    total = 0
    try:
        # Decompress fully first: gzip checks its CRC and length only at the very end, and a
        # truncated archive can otherwise still list every member.
        with gzip.open(path, "rb") as gz:
            raw = gz.read(MAX_UNPACKED + 1)
        if len(raw) > MAX_UNPACKED:
            raise DeployError(f"{path}: unpacks to more than {MAX_UNPACKED} bytes")
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for m in tar:
                name = _check_member(path, m)
                if m.isdir():
                    continue
                if name in out:
                    raise DeployError(f"{path}: member {name!r} appears twice")
                total += m.size
                if total > MAX_UNPACKED:
                    raise DeployError(f"{path}: unpacks to more than {MAX_UNPACKED} bytes")
                f = tar.extractfile(m)
                out[name] = (m, f.read() if f else b"")
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DeployError(f"{path}: not a readable .tar.gz bundle: {exc}") from exc
    return out


def _check_manifest(
    path: Path, members: dict[str, tuple[tarfile.TarInfo, bytes]]
) -> dict[str, str]:
    if MANIFEST not in members:
        raise DeployError(f"{path}: no {MANIFEST} in the bundle")
    listed: dict[str, str] = {}
    for n, line in enumerate(members[MANIFEST][1].decode(errors="replace").splitlines(), 1):
        m = _MANIFEST_LINE.match(line)
        if not m:
            raise DeployError(f"{path}: {MANIFEST} line {n} is malformed")
        listed[_safe_name(path, m.group(2))] = m.group(1)
    present = set(members) - {MANIFEST}
    if missing := sorted(set(listed) - present):
        raise DeployError(f"{path}: listed in {MANIFEST} but missing: {', '.join(missing)}")
    if extra := sorted(present - set(listed)):
        raise DeployError(f"{path}: not listed in {MANIFEST}: {', '.join(extra)}")
    for name, digest in listed.items():
        if _sha256(members[name][1]) != digest:
            raise DeployError(f"{path}: {name} does not match its sha256 in {MANIFEST}")
    listed[MANIFEST] = _sha256(members[MANIFEST][1])
    return listed


def verify_bundle(path: str | Path) -> BundleInfo:
    """Check a bundle without unpacking it: safe member names, no links, manifest intact."""
    path = Path(path)
    files = _check_manifest(path, _read_members(path))
    return BundleInfo(path, _sha256(path.read_bytes()), files)


def unpack_bundle(path: str | Path, dest: str | Path) -> BundleInfo:
    """Verify ``path`` (see :func:`verify_bundle`) and unpack it into the empty folder ``dest``."""
    path, dest = Path(path), Path(dest)
    members = _read_members(path)
    files = _check_manifest(path, members)
    if dest.exists() and any(dest.iterdir()):
        raise DeployError(f"{dest}: destination folder is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    for name, (info, data) in sorted(members.items()):
        target = (root / name).resolve()
        if root not in target.parents:
            raise DeployError(f"{path}: member {name!r} would land outside {dest}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as f:
            f.write(data)
        os.chmod(target, 0o755 if info.mode & 0o111 else 0o644)
    return BundleInfo(path, _sha256(path.read_bytes()), files)


def read_bundle_config(path: str | Path) -> DeployConfig:
    """The :class:`DeployConfig` a (verified) bundle was built from, models by file name."""
    path = Path(path)
    members = _read_members(path)
    _check_manifest(path, members)
    if "edgekit.yaml" not in members:
        raise DeployError(f"{path}: no edgekit.yaml in the bundle")
    data = yaml.safe_load(members["edgekit.yaml"][1])
    return config_from_dict(data, source=f"{path}:edgekit.yaml")
