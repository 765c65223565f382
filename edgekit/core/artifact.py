"""Self-describing model artifacts: a ZIP appended to the TFLite flatbuffer.

This is the convention of the TFLite metadata tooling (the standard SSD models carry their
``labelmap.txt`` this way): the interpreter ignores bytes after the flatbuffer, and ``zipfile``
finds a ZIP's central directory at the end of any file. edgekit adds ``edgekit_spec.json``
(a :class:`~edgekit.core.types.ModelSpec`) next to ``labelmap.txt`` (one label per line).

Pure Python; used by export (write) and runtime (read).
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from edgekit.core.types import ModelSpec

SPEC_NAME = "edgekit_spec.json"
LABELS_NAME = "labelmap.txt"


@dataclass(frozen=True)
class EmbeddedFiles:
    """What was found appended to a model: its spec (if edgekit wrote it) and labels."""

    spec: ModelSpec | None
    labels: tuple[str, ...]
    names: tuple[str, ...]


# What zipfile raises on a damaged archive besides BadZipFile (bad version, bad deflate data,
# truncated member, offsets past the end, a flipped "encrypted" flag bit -> RuntimeError).
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
    EOFError,
    ValueError,
    OSError,
    RuntimeError,
)

MAX_LABEL_ID = 100_000  # an ``id name`` label file with a larger id is read as plain lines


def parse_labels(text: str) -> tuple[str, ...]:
    """Parse a label file: one label per line, or ``id name`` pairs (ids may have gaps).

    With ``id name`` lines the result is indexed by id, gaps filled with ``""``. Blank
    trailing lines are dropped; ``???`` placeholders (TF1 label maps) are kept as given.
    Ids are ASCII digits up to ``MAX_LABEL_ID``; a file with others is one label per line.
    """
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    pairs = []
    for line in lines:
        head, _, rest = line.strip().partition(" ")
        if not (head.isascii() and head.isdigit()) or not rest.strip() or len(head) > 9:
            pairs = None
            break
        pairs.append((int(head), rest.strip()))
    if pairs and max(i for i, _ in pairs) <= MAX_LABEL_ID:
        out = [""] * (max(i for i, _ in pairs) + 1)
        for i, name in pairs:
            out[i] = name
        return tuple(out)
    return tuple(line.strip() for line in lines)


def flatbuffer_end(data: bytes) -> int:
    """Offset where appended data (a ZIP) starts, or ``len(data)`` when nothing is appended."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except ZIP_ERRORS:
        return len(data)
    if not infos:
        return len(data)
    # zipfile shifts header offsets by the bytes before the ZIP, so this is absolute.
    return min(i.header_offset for i in infos)


def read_embedded(data: bytes) -> EmbeddedFiles:
    """Read edgekit's spec and/or ``labelmap.txt`` from a model's bytes. Never raises on
    models without appended files; raises ``ValueError`` for a present but malformed spec or
    damaged appended files."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except ZIP_ERRORS:
        return EmbeddedFiles(None, (), ())
    with zf:
        names = tuple(zf.namelist())
        spec = None
        labels: tuple[str, ...] = ()
        try:
            spec_json = zf.read(SPEC_NAME).decode("utf-8") if SPEC_NAME in names else None
            label_bytes = zf.read(LABELS_NAME) if LABELS_NAME in names else None
        except ZIP_ERRORS as exc:
            raise ValueError(f"appended files are damaged ({type(exc).__name__}: {exc})") from exc
        if spec_json is not None:
            spec = ModelSpec.from_json(spec_json)
        if label_bytes is not None:
            labels = parse_labels(label_bytes.decode("utf-8", errors="replace"))
    if spec is not None and not spec.labels and labels:
        spec = _with_labels(spec, labels)
    return EmbeddedFiles(spec, spec.labels if spec and spec.labels else labels, names)


def _with_labels(spec: ModelSpec, labels: tuple[str, ...]) -> ModelSpec:
    from dataclasses import replace

    return replace(spec, labels=labels)


def embed(
    flatbuffer: bytes, spec: ModelSpec | None, labels: tuple[str, ...] | None = None
) -> bytes:
    """Return ``flatbuffer`` with a ZIP of ``edgekit_spec.json`` and ``labelmap.txt`` appended.

    Any ZIP already appended is replaced, so embedding twice is idempotent.
    """
    body = flatbuffer[: flatbuffer_end(flatbuffer)]
    labels = tuple(labels if labels is not None else (spec.labels if spec else ()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        if spec is not None:
            zf.writestr(SPEC_NAME, spec.to_json())
        if labels:
            zf.writestr(LABELS_NAME, "\n".join(labels) + "\n")
    return body + buf.getvalue()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` so that a process killed at any point leaves no partial file.

    On Linux the bytes go to an unnamed ``O_TMPFILE`` in the target folder (the kernel frees it
    if the process dies), linked under a temporary name only once complete and fsynced, then
    renamed over the target. Elsewhere (or on filesystems without ``O_TMPFILE``): a named temp
    file + fsync + rename, where only a kill mid-write can leave a ``.NAME.*.tmp`` behind.
    Either way the target is the old file or the complete new one, never a partial one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    flag = getattr(os, "O_TMPFILE", None)
    if flag is not None and os.path.isdir("/proc/self/fd"):
        try:
            fd = os.open(target.parent, flag | os.O_WRONLY, 0o644)
        except OSError:  # filesystem without O_TMPFILE
            pass
        else:
            return _write_unnamed(fd, target, data)
    return _write_named(target, data)


def _write_unnamed(fd: int, target: Path, data: bytes) -> Path:
    tmp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        proc_fd = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
        try:  # linkat(..., AT_SYMLINK_FOLLOW) gives the unnamed file a name
            os.link(str(fd), tmp, src_dir_fd=proc_fd, follow_symlinks=True)
        finally:
            os.close(proc_fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    return target


def _write_named(target: Path, data: bytes) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target
