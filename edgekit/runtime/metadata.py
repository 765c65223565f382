"""What a third-party ``.tflite`` says about itself: Ultralytics' appended metadata and TFLite
Support metadata (the ``TFLITE_METADATA`` buffer and its associated files).

- Ultralytics exports append a ZIP holding one text file with a dict: ``metadata.json`` (JSON,
  recent versions) or ``temp_meta.txt`` (a Python literal written with ``str(dict)``, older
  versions, registered as a TFLite Support label file). It is parsed with :func:`json.loads`
  or :func:`ast.literal_eval`, never ``eval``; only known keys with the right types are kept.
- TFLite Support metadata (``metadata_schema.fbs``) names the model, its author and licence,
  the input's normalization and the label files (``TENSOR_AXIS_LABELS`` of a classifier's
  scores, ``TENSOR_VALUE_LABELS`` of a detector's classes) zipped after the flatbuffer.

Everything is size-limited and nothing here raises on a damaged or hostile file: what cannot be
read becomes a line in :attr:`ModelMetadata.warnings` and is otherwise ignored. Pure Python.
"""

from __future__ import annotations

import ast
import io
import json
import math
import struct
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from edgekit.core.artifact import LABELS_NAME, SPEC_NAME, ZIP_ERRORS, parse_labels
from edgekit.core.flatbuffer import TFLiteGraph, _Buf, _Table, read_tflite

__all__ = [
    "MAX_LABELS",
    "MAX_MEMBER_BYTES",
    "ModelMetadata",
    "parse_support_metadata",
    "parse_ultralytics",
    "read_metadata",
]

MAX_MEMBER_BYTES = 1 << 20  # one appended text file (a label file, the Ultralytics dict)
MAX_MEMBERS = 64  # appended files looked at
MAX_LABELS = 100_000
MAX_TEXT = 2_000  # characters kept of a free-text field (description, licence, ...)
SUPPORT_METADATA = "TFLITE_METADATA"
SUPPORT_IDENTIFIER = b"M001"
ULTRALYTICS_TASKS = ("detect", "segment", "pose", "classify", "obb")

# metadata_schema.fbs: AssociatedFileType TENSOR_AXIS_LABELS = 2, TENSOR_VALUE_LABELS = 3;
# ProcessUnitOptions NormalizationOptions = 1.
_LABEL_FILE_TYPES = (2, 3)
_NORMALIZATION_OPTIONS = 1


@dataclass(frozen=True)
class ModelMetadata:
    """What a model's own metadata says (empty fields: not said).

    ``source``: "ultralytics", "tflite-support" or "" (none found); ``labels_source`` names the
    file the labels came from; ``input_size`` is (height, width); ``normalization`` the input's
    float domain as (mean, std) of 0..255 pixels, when the metadata declares one; ``warnings``
    says what was present but could not be used.
    """

    source: str = ""
    name: str = ""
    description: str = ""
    author: str = ""
    version: str = ""
    license: str = ""
    date: str = ""
    task: str = ""
    input_size: tuple[int, int] | None = None
    stride: int | None = None
    labels: tuple[str, ...] = ()
    labels_source: str = ""
    normalization: tuple[float, float] | None = None
    warnings: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, without the labels (reported apart) and without empty fields."""
        out: dict[str, Any] = {}
        for key in (
            "source",
            "name",
            "description",
            "author",
            "version",
            "license",
            "date",
            "task",
            "input_size",
            "stride",
            "labels_source",
            "normalization",
        ):
            value = getattr(self, key)
            if value not in ("", None, ()):
                out[key] = list(value) if isinstance(value, tuple) else value
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


# --- Ultralytics -----------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.strip()[:MAX_TEXT] if isinstance(value, str) else ""


def _names(value: Any) -> tuple[str, ...]:
    """Ultralytics ``names`` ({id: name} with int or digit-string ids, or a list) -> labels."""
    if isinstance(value, (list, tuple)):
        items = list(enumerate(value))
    elif isinstance(value, Mapping):
        items = []
        for key, name in value.items():
            if isinstance(key, bool):
                raise ValueError(f"class id {key!r} is not a number")
            if isinstance(key, str) and key.strip().isdigit():
                key = int(key.strip())
            if not isinstance(key, int) or not 0 <= key < MAX_LABELS:
                raise ValueError(f"class id {key!r} is not a number below {MAX_LABELS}")
            items.append((key, name))
    else:
        raise ValueError(f"names is a {type(value).__name__}, not a dict or list")
    if len(items) > MAX_LABELS:
        raise ValueError(f"{len(items)} names (more than {MAX_LABELS})")
    if not items:
        return ()
    labels = [""] * (max(k for k, _ in items) + 1)
    for key, name in items:
        if not isinstance(name, str):
            raise ValueError(f"name of class {key} is a {type(name).__name__}, not a string")
        labels[key] = name.strip()
    return tuple(labels)


def _imgsz(value: Any) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 100_000 for v in value)
    ):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"imgsz {value!r} is not an int or [height, width]")


def parse_ultralytics(text: str) -> dict[str, Any]:
    """Parse Ultralytics' metadata text (JSON or a Python literal, never evaluated) into a dict.

    Raises ``ValueError`` (with a short reason) when it is too long, not a literal, or not a
    dict."""
    if len(text) > MAX_MEMBER_BYTES:
        raise ValueError(f"{len(text)} characters (limit {MAX_MEMBER_BYTES})")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        try:
            data = ast.literal_eval(text.strip())
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
            raise ValueError(f"not a JSON or Python literal ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ValueError(f"a {type(data).__name__}, not a dict")
    return data


def _looks_ultralytics(data: Mapping[str, Any]) -> bool:
    return "names" in data and any(k in data for k in ("imgsz", "stride", "task"))


def _from_ultralytics(data: Mapping[str, Any], member: str) -> ModelMetadata:
    """Keep the known fields of an Ultralytics dict; a malformed field is a warning."""
    warnings: list[str] = []
    fields: dict[str, Any] = {"source": "ultralytics", "normalization": (0.0, 255.0)}
    for key in ("description", "author", "version", "license", "date"):
        fields[key] = _text(data.get(key))
    for key, read, target in (
        ("names", _names, "labels"),
        ("imgsz", _imgsz, "input_size"),
    ):
        if key in data:
            try:
                fields[target] = read(data[key])
            except ValueError as exc:
                warnings.append(f"Ultralytics metadata ({member}): {key} ignored: {exc}")
    stride = data.get("stride")
    if isinstance(stride, (int, float)) and not isinstance(stride, bool):
        if math.isfinite(stride) and 0 < stride <= 1024:
            fields["stride"] = int(stride)
    elif stride is not None:
        warnings.append(f"Ultralytics metadata ({member}): stride {stride!r} ignored")
    task = data.get("task")
    if isinstance(task, str) and task in ULTRALYTICS_TASKS:
        fields["task"] = task
    elif task is not None:
        warnings.append(f"Ultralytics metadata ({member}): unknown task {str(task)[:40]!r} ignored")
    if fields.get("labels"):
        fields["labels_source"] = f"Ultralytics metadata ({member})"
    return ModelMetadata(**fields, warnings=tuple(warnings))


# --- TFLite Support metadata -----------------------------------------------------------------


@dataclass(frozen=True)
class _SupportMetadata:
    name: str = ""
    description: str = ""
    version: str = ""
    author: str = ""
    license: str = ""
    label_files: tuple[str, ...] = ()  # label files in order: outputs first, then model-level
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None


def _label_files(tables: Sequence[_Table]) -> list[str]:
    out = []
    for f in tables:
        if int(f.scalar(2, "b", 0)) in _LABEL_FILE_TYPES and f.string(0):
            out.append(f.string(0))
    return out


def _normalization(tensor: _Table) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    for unit in tensor.tables(4):  # process_units
        if int(unit.scalar(0, "B", 0)) != _NORMALIZATION_OPTIONS:
            continue
        options = unit.table(1)
        if options is not None:
            return tuple(options.scalars(0, "f")), tuple(options.scalars(1, "f"))
    return None


def parse_support_metadata(buffer: bytes) -> _SupportMetadata:
    """Parse a ``TFLITE_METADATA`` buffer (a ``ModelMetadata`` flatbuffer, identifier
    ``M001``). Raises ``ValueError`` when it is malformed."""
    if len(buffer) < 8 or buffer[4:8] != SUPPORT_IDENTIFIER:
        raise ValueError("not a TFLite Support metadata buffer (identifier is not M001)")
    buf = _Buf(bytes(buffer))
    try:
        meta = buf.table(buf.deref(0))
        labels: list[str] = []
        normalization = None
        for subgraph in meta.tables(3)[:1]:
            inputs = subgraph.tables(2)
            if inputs:
                normalization = _normalization(inputs[0])
            for tensor in subgraph.tables(3):  # outputs
                labels += _label_files(tensor.tables(6))
            labels += _label_files(subgraph.tables(4))
        labels += _label_files(meta.tables(6))
        return _SupportMetadata(
            name=_text(meta.string(0)),
            description=_text(meta.string(1)),
            version=_text(meta.string(2)),
            author=_text(meta.string(4)),
            license=_text(meta.string(5)),
            label_files=tuple(dict.fromkeys(labels)),
            normalization=normalization,
        )
    except (ValueError, struct.error, IndexError, OverflowError, RecursionError) as exc:
        raise ValueError(f"malformed TFLite Support metadata: {exc}") from None


def _scalar_normalization(
    norm: tuple[tuple[float, ...], tuple[float, ...]],
) -> tuple[float, float]:
    mean, std = norm
    if not mean or not std:
        raise ValueError("mean or std is empty")
    if len(set(mean)) > 1 or len(set(std)) > 1:
        raise ValueError(f"per-channel mean {list(mean)} / std {list(std)} is not supported")
    m, s = float(mean[0]), float(std[0])
    if not (math.isfinite(m) and math.isfinite(s)) or s == 0:
        raise ValueError(f"mean {m} / std {s} is not usable")
    return (m, s)


# --- reading a model -------------------------------------------------------------------------


def _members(data: bytes) -> tuple[dict[str, bytes], list[str]]:
    """Small appended files by name (at most ``MAX_MEMBERS``, each at most ``MAX_MEMBER_BYTES``),
    and warnings about the ones left out."""
    warnings: list[str] = []
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except ZIP_ERRORS:
        return {}, warnings
    out: dict[str, bytes] = {}
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            warnings.append(f"{len(infos)} appended files: only the first {MAX_MEMBERS} read")
        for info in infos[:MAX_MEMBERS]:
            if info.is_dir() or info.filename in (SPEC_NAME,):
                continue
            if info.file_size > MAX_MEMBER_BYTES:
                warnings.append(
                    f"appended file {info.filename!r} ignored: {info.file_size:,} bytes "
                    f"(limit {MAX_MEMBER_BYTES:,})"
                )
                continue
            try:
                with zf.open(info) as fh:
                    body = fh.read(MAX_MEMBER_BYTES + 1)
            except ZIP_ERRORS as exc:
                warnings.append(
                    f"appended file {info.filename!r} is damaged ({type(exc).__name__})"
                )
                continue
            if len(body) > MAX_MEMBER_BYTES:
                warnings.append(f"appended file {info.filename!r} ignored: over the size limit")
                continue
            out[info.filename] = body
    return out, warnings


def _ultralytics(members: Mapping[str, bytes]) -> tuple[ModelMetadata | None, str, list[str]]:
    """The first appended file holding an Ultralytics dict (and its name), plus warnings about
    dict-like files that could not be parsed."""
    warnings: list[str] = []
    for member, body in members.items():
        if member == LABELS_NAME or not member.lower().endswith((".json", ".txt", ".yaml")):
            continue
        text = body.decode("utf-8", errors="replace")
        if not text.lstrip().startswith("{"):
            continue
        try:
            data = parse_ultralytics(text)
        except ValueError as exc:
            warnings.append(f"appended metadata {member!r} ignored: {exc}")
            continue
        if _looks_ultralytics(data):
            return _from_ultralytics(data, member), member, warnings
    return None, "", warnings


def _labels_from(member: str, body: bytes, what: str) -> tuple[tuple[str, ...], str | None]:
    labels = parse_labels(body.decode("utf-8", errors="replace"))
    if len(labels) > MAX_LABELS:
        return (), f"{what} label file {member!r} ignored: {len(labels):,} labels"
    if not any(labels):
        return (), f"{what} label file {member!r} is empty"
    return labels, None


def read_metadata(data: bytes, graph: TFLiteGraph | None = None) -> ModelMetadata:
    """Ultralytics and TFLite Support metadata of a model's bytes; never raises.

    ``graph`` (the parsed flatbuffer) is read from ``data`` when not given; a model whose
    flatbuffer cannot be parsed still has its appended files read."""
    members, warnings = _members(data)
    result, ultralytics_member, more = _ultralytics(members)
    warnings += more
    if graph is None:
        try:
            graph = read_tflite(data)
        except (ValueError, TypeError):
            graph = None
    support = None
    buffer = graph.metadata_buffer(SUPPORT_METADATA) if graph is not None else None
    if buffer is not None:
        try:
            support = parse_support_metadata(buffer)
        except ValueError as exc:
            warnings.append(f"TFLite metadata ignored: {exc}")
    if support is not None:
        fields: dict[str, Any] = {}
        if result is None:
            fields.update(
                source="tflite-support",
                name=support.name,
                description=support.description,
                version=support.version,
                author=support.author,
                license=support.license,
            )
            if support.normalization is not None:
                try:
                    fields["normalization"] = _scalar_normalization(support.normalization)
                except ValueError as exc:
                    warnings.append(f"TFLite metadata input normalization ignored: {exc}")
        current = result.labels if result is not None else ()
        for member in support.label_files:
            if current or member == ultralytics_member:
                break
            if member not in members:
                warnings.append(f"TFLite metadata names label file {member!r}, not in the model")
                continue
            labels, problem = _labels_from(member, members[member], "TFLite metadata")
            if problem:
                warnings.append(problem)
            else:
                fields["labels"], fields["labels_source"] = labels, f"{member} (TFLite metadata)"
                current = labels
        result = replace(result or ModelMetadata(), **fields)
    result = result or ModelMetadata()
    if warnings:
        result = replace(result, warnings=(*result.warnings, *warnings))
    return result
