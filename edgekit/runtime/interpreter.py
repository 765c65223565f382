"""Make a TFLite interpreter: pick a backend, validate the file, load the Edge TPU delegate.

Backends, in order of preference (each imported only when tried):

1. ``ai_edge_litert`` (LiteRT, the maintained package; XNNPACK on for float and int8),
2. ``tflite_runtime`` (2.14 is the last release: needs numpy<2, no int8 XNNPACK),
3. ``tensorflow.lite`` (deprecated; with XNNPACK it computes some strided convolutions wrongly,
   so choosing it warns).

XNNPACK stays on: no flag that disables it is ever passed. Models compiled for the Edge TPU
(they contain the ``edgetpu-custom-op``) get the libedgetpu delegate; when it cannot be loaded
the error says how to install it and which CPU model to use instead.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import BackendUnavailable, EdgeTPUUnavailable, ModelLoadError

__all__ = [
    "BACKENDS",
    "EDGETPU_CUSTOM_OP",
    "Backend",
    "BackendInfo",
    "debug_interpreter",
    "edgetpu_library",
    "interpreter_from_bytes",
    "is_edgetpu_model",
    "make_interpreter",
    "read_model_bytes",
    "resolve_backend",
    "validate_model_bytes",
]

EDGETPU_CUSTOM_OP = b"edgetpu-custom-op"
TFLITE_IDENTIFIER = b"TFL3"
TF_LITE_WARNING = (
    "using tensorflow.lite's Interpreter: it is deprecated and, with XNNPACK, returns wrong "
    "results for some strided convolutions; `pip install ai-edge-litert` for correct outputs"
)
EDGETPU_INSTALL_HINT = (
    "fix: install the Edge TPU runtime libedgetpu1-std from Coral's apt repository "
    "(https://coral.ai/software/#debian-packages) and plug in the accelerator"
)


@dataclass(frozen=True)
class BackendSpec:
    """One interpreter package: import name, module holding ``Interpreter``, pip name."""

    name: str
    module: str
    pip: str


# Order of preference. ``tensorflow``'s module is its public ``tf.lite`` namespace.
BACKENDS: tuple[BackendSpec, ...] = (
    BackendSpec("ai_edge_litert", "ai_edge_litert.interpreter", "ai-edge-litert"),
    BackendSpec("tflite_runtime", "tflite_runtime.interpreter", "tflite-runtime"),
    BackendSpec("tensorflow", "tensorflow", "tensorflow"),
)
_ALIASES = {
    "litert": "ai_edge_litert",
    "ai-edge-litert": "ai_edge_litert",
    "tflite": "tflite_runtime",
    "tflite-runtime": "tflite_runtime",
    "tf": "tensorflow",
    "tf.lite": "tensorflow",
    "tensorflow.lite": "tensorflow",
}


@dataclass(frozen=True)
class Backend:
    """A loaded backend: its name, ``Interpreter`` class and ``load_delegate`` function."""

    name: str
    interpreter_cls: Any
    load_delegate: Callable[..., Any] | None
    version: str = ""


@dataclass(frozen=True)
class BackendInfo:
    """What runs a model: backend name, CPU threads, delegate (``"edgetpu"`` or ``None``)."""

    name: str
    threads: int
    delegate: str | None = None
    version: str = ""


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _numpy_major() -> int:
    return int(np.__version__.split(".")[0])


def _tflite_runtime_numpy_problem() -> str | None:
    """tflite_runtime <= 2.14 was built against numpy 1 and crashes under numpy 2."""
    version = _dist_version("tflite-runtime") or _dist_version("tflite_runtime")
    if version is None or _numpy_major() < 2:
        return None
    parts = re.findall(r"\d+", version)
    if len(parts) >= 2 and (int(parts[0]), int(parts[1])) <= (2, 14):
        return (
            f"tflite_runtime {version} needs numpy<2 (numpy {np.__version__} is installed); "
            "`pip install ai-edge-litert` instead"
        )
    return None


def _load_backend(spec: BackendSpec, importer: Callable[[str], Any]) -> Backend:
    module = importer(spec.module)
    if spec.name == "tensorflow":
        lite = module.lite
        cls = lite.Interpreter
        load_delegate = getattr(getattr(lite, "experimental", None), "load_delegate", None)
    else:
        cls = module.Interpreter
        load_delegate = getattr(module, "load_delegate", None)
    version = _dist_version(spec.pip) or str(getattr(module, "__version__", ""))
    return Backend(spec.name, cls, load_delegate, version)


def _canonical(name: str) -> str:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    known = [b.name for b in BACKENDS]
    if key not in known:
        raise BackendUnavailable(
            f"unknown interpreter backend {name!r}; choose one of {', '.join(known)}"
        )
    return key


def resolve_backend(
    name: str | None = None, *, importer: Callable[[str], Any] = importlib.import_module
) -> Backend:
    """The backend to use: ``name`` when given (else the first importable in :data:`BACKENDS`).

    Raises :class:`BackendUnavailable` naming the package to ``pip install``.
    """
    if name is not None:
        spec = next(b for b in BACKENDS if b.name == _canonical(name))
        if spec.name == "tflite_runtime" and (problem := _tflite_runtime_numpy_problem()):
            raise BackendUnavailable(problem)
        try:
            backend = _load_backend(spec, importer)
        except (ImportError, AttributeError) as exc:
            raise BackendUnavailable(
                f"interpreter backend {spec.name!r} is not available ({_one_line(exc)}); "
                f"`pip install {spec.pip}`"
            ) from None
    else:
        tried = []
        backend = None
        for spec in BACKENDS:
            if spec.name == "tflite_runtime" and (problem := _tflite_runtime_numpy_problem()):
                tried.append(f"{spec.name}: {problem}")
                continue
            try:
                backend = _load_backend(spec, importer)
                break
            except (ImportError, AttributeError) as exc:
                tried.append(f"{spec.name}: {_one_line(exc)}")
        if backend is None:
            raise BackendUnavailable(
                "no TFLite interpreter is installed (tried " + "; ".join(tried) + "); "
                "`pip install ai-edge-litert` (or tflite-runtime with numpy<2 on 32-bit ARM)"
            )
    if backend.name == "tensorflow":
        warnings.warn(TF_LITE_WARNING, RuntimeWarning, stacklevel=3)
    return backend


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


# --- files -----------------------------------------------------------------------------------

_MAGIC = (
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG", "a PNG image"),
    (b"BM", "a BMP image"),
    (b"GIF8", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"%PDF", "a PDF document"),
    (b"\x7fELF", "an executable"),
    (b"\x89HDF", "an HDF5 (Keras .h5) file"),
)


def _describe_garbage(data: bytes) -> str:
    for magic, what in _MAGIC:
        if data.startswith(magic):
            return what
    if data[8:16] == b"ftypisom" or data[4:8] == b"ftyp":
        return "a video file"
    head = data[:512]
    if head and all(b in b"\t\n\r" or 32 <= b < 127 for b in head):
        return "a text file"
    return "not a TFLite flatbuffer"


def validate_model_bytes(data: bytes, name: str = "<bytes>") -> None:
    """Check ``data`` looks like a TFLite flatbuffer (identifier ``TFL3`` at bytes 4..8 and a
    root offset inside the buffer). Raises :class:`ModelLoadError` naming ``name``."""
    if len(data) == 0:
        raise ModelLoadError(f"{name}: model file is empty")
    if len(data) < 16:
        raise ModelLoadError(f"{name}: model file is truncated ({len(data)} bytes)")
    if data[4:8] != TFLITE_IDENTIFIER:
        what = _describe_garbage(data)
        raise ModelLoadError(
            f"{name}: not a TFLite model (no 'TFL3' identifier at bytes 4..8; looks like {what})"
        )
    root = int.from_bytes(data[0:4], "little")
    if root + 4 > len(data):
        raise ModelLoadError(f"{name}: model file is truncated ({len(data)} bytes)")


def read_model_bytes(model: str | os.PathLike[str] | bytes) -> tuple[bytes, str, Path | None]:
    """Return ``(bytes, display_name, path_or_None)`` for a path or raw bytes, validated."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        validate_model_bytes(data, "<model bytes>")
        return data, "<model bytes>", None
    path = Path(model)
    if not path.exists():
        raise ModelLoadError(f"{path}: model file not found")
    if path.is_dir():
        raise ModelLoadError(f"{path}: is a folder, not a .tflite model file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read model file ({_one_line(exc)})") from None
    validate_model_bytes(data, str(path))
    return data, str(path), path


# --- Edge TPU --------------------------------------------------------------------------------


def is_edgetpu_model(data: bytes) -> bool:
    """True when the model was compiled by edgetpu_compiler (contains its custom op)."""
    return EDGETPU_CUSTOM_OP in data


def edgetpu_library(system: str | None = None) -> str:
    """The Edge TPU runtime's shared library name on this (or the given) OS."""
    system = system or platform.system()
    return {"Windows": "edgetpu.dll", "Darwin": "libedgetpu.1.dylib"}.get(system, "libedgetpu.so.1")


def cpu_sibling(path: Path | None) -> Path | None:
    """``x_edgetpu.tflite`` -> ``x.tflite`` when that file exists."""
    if path is None or "_edgetpu" not in path.stem:
        return None
    sibling = path.with_name(path.stem.replace("_edgetpu", "") + path.suffix)
    return sibling if sibling.exists() else None


@contextmanager
def _quiet_delegate_cleanup() -> Iterator[None]:
    """Silence the "Exception ignored in Delegate.__del__ ... '_library'" noise that a failed
    ``load_delegate`` prints when its half-built object is collected."""
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        obj = getattr(unraisable, "object", None)
        where = getattr(obj, "__qualname__", "") or repr(obj)
        if "Delegate" in where or "_library" in str(unraisable.exc_value):
            return
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        import gc

        gc.collect()
        sys.unraisablehook = previous


def _load_edgetpu(
    loader: Callable[[str], Any] | None, backend: Backend, name: str, path: Path | None
) -> Any:
    libname = edgetpu_library()
    if loader is None:
        if backend.load_delegate is None:
            raise EdgeTPUUnavailable(
                f"{name}: compiled for the Edge TPU, but backend {backend.name!r} cannot load "
                "delegates",
                hint=_edgetpu_hint(path),
            )
        loader = backend.load_delegate
    failure = None
    with _quiet_delegate_cleanup():
        try:
            return loader(libname)
        except (OSError, ValueError, RuntimeError, AttributeError) as exc:
            failure = _one_line(exc)
    raise EdgeTPUUnavailable(
        f"{name}: compiled for the Edge TPU, but its runtime {libname} could not be loaded "
        f"({failure})",
        hint=_edgetpu_hint(path),
    )


def _edgetpu_hint(path: Path | None) -> str:
    sibling = cpu_sibling(path)
    cpu = (
        f"or run the CPU model {sibling} instead"
        if sibling
        else "or run the same model compiled without `_edgetpu` on the CPU"
    )
    return f"{EDGETPU_INSTALL_HINT}; {cpu}"


# --- interpreter -----------------------------------------------------------------------------


def default_threads() -> int:
    """CPU threads when none are asked for: the cores available, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


@contextmanager
def _without_xnnpack_banner() -> Iterator[None]:
    """Drop LiteRT's native "INFO: Created TensorFlow Lite XNNPACK delegate" line (printed on
    file descriptor 2 by ``allocate_tensors``) and pass any other native output through, so
    edgekit's own messages and one-line errors stay readable. No-op when stderr has no fd."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(True) if "XNNPACK delegate" not in line]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def make_interpreter(
    model: str | os.PathLike[str] | bytes,
    *,
    backend: str | None = None,
    threads: int | None = None,
    delegate_loader: Callable[[str], Any] | None = None,
    importer: Callable[[str], Any] = importlib.import_module,
) -> tuple[Any, BackendInfo]:
    """Create and allocate an interpreter for ``model`` (a path or the model's bytes).

    ``backend`` forces one of ``ai_edge_litert``, ``tflite_runtime``, ``tensorflow``;
    ``threads`` defaults to :func:`default_threads`; ``delegate_loader(libname)`` loads the Edge
    TPU delegate (default: the backend's ``load_delegate``). Returns the allocated interpreter
    and a :class:`BackendInfo`. Raises :class:`ModelLoadError` (one line: which file, what is
    wrong), :class:`BackendUnavailable` or :class:`EdgeTPUUnavailable`.
    """
    data, name, path = read_model_bytes(model)
    return interpreter_from_bytes(
        data,
        name,
        path,
        backend=backend,
        threads=threads,
        delegate_loader=delegate_loader,
        importer=importer,
    )


def interpreter_from_bytes(
    data: bytes,
    name: str,
    path: Path | None = None,
    *,
    backend: str | None = None,
    threads: int | None = None,
    delegate_loader: Callable[[str], Any] | None = None,
    importer: Callable[[str], Any] = importlib.import_module,
) -> tuple[Any, BackendInfo]:
    """:func:`make_interpreter` for bytes already read (and validated) from ``path``."""
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ModelLoadError(f"{name}: threads must be a positive integer, got {threads!r}")
    chosen = resolve_backend(backend, importer=importer)
    nthreads = threads or default_threads()
    delegates = []
    delegate_name = None
    if is_edgetpu_model(data):
        delegates.append(_load_edgetpu(delegate_loader, chosen, name, path))
        delegate_name = "edgetpu"
    kwargs: dict[str, Any] = {"model_content": data, "num_threads": nthreads}
    if delegates:
        kwargs["experimental_delegates"] = delegates
    try:
        interpreter = chosen.interpreter_cls(**kwargs)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise ModelLoadError(f"{name}: {chosen.name} cannot load it ({_one_line(exc)})") from None
    try:
        with _without_xnnpack_banner():
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        text = _one_line(exc)
        if "edgetpu-custom-op" in text:
            raise EdgeTPUUnavailable(
                f"{name}: compiled for the Edge TPU, but no Edge TPU delegate is active",
                hint=_edgetpu_hint(path),
            ) from None
        raise ModelLoadError(f"{name}: tensors cannot be allocated ({text})") from None
    return interpreter, BackendInfo(chosen.name, nthreads, delegate_name, chosen.version)


def debug_interpreter(model: str | os.PathLike[str] | bytes) -> Any:
    """An allocated interpreter of the first installed backend that keeps every intermediate
    tensor and runs without XNNPACK (whose fused subgraph would hide them): for comparing a
    model's inner tensors, never for timing."""
    data, _, _ = read_model_bytes(model)
    backend = resolve_backend()
    kwargs: dict[str, Any] = {"model_content": data, "experimental_preserve_all_tensors": True}
    module = sys.modules.get(backend.interpreter_cls.__module__)
    resolver = getattr(module, "OpResolverType", None)
    if resolver is not None:
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = backend.interpreter_cls(**kwargs)
    interpreter.allocate_tensors()
    return interpreter
