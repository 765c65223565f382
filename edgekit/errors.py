"""Typed errors. The CLI turns each into a one-line message and a non-zero exit code."""

from __future__ import annotations


class EdgekitError(Exception):
    """Base of every error edgekit raises on purpose. ``exit_code`` is what the CLI returns."""

    exit_code = 1
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} ({self.hint})" if self.hint else base


class UsageError(EdgekitError):
    """A bad combination of options or arguments."""

    exit_code = 2


class ModelLoadError(EdgekitError):
    """A model file is missing, truncated, not a model, or cannot be run by any backend."""

    exit_code = 3


class BackendUnavailable(ModelLoadError):
    """No (or not the requested) TFLite interpreter backend is installed."""


class EdgeTPUUnavailable(ModelLoadError):
    """A model needs the Edge TPU but its runtime/delegate (libedgetpu) cannot be loaded."""


class UnsupportedModelError(ModelLoadError):
    """The model loads but edgekit cannot tell what it is or how to decode it."""


class ModelOutputError(ModelLoadError):
    """A model's outputs cannot be decoded (wrong shapes or values for its decoder)."""


class SourceError(EdgekitError):
    """A frame source (camera, file, stream, folder) cannot be opened or read."""

    exit_code = 4


class SinkError(EdgekitError):
    """An output (video file, JSONL, window, stream) cannot be written."""

    exit_code = 5


class DatasetError(EdgekitError):
    """A dataset or annotation file is missing or malformed (names the file and what is wrong)."""

    exit_code = 6


class ExportError(EdgekitError):
    """A model could not be converted, compiled or written."""

    exit_code = 7


class ConfigError(EdgekitError):
    """A YAML/JSON configuration is malformed."""

    exit_code = 2


class DeployError(EdgekitError):
    """Bundling, flashing or deployment failed."""

    exit_code = 8


class UnsafeTargetError(DeployError):
    """A flash target was refused (mounted, system disk, non-removable, too small)."""


class DependencyMissing(EdgekitError):
    """An optional dependency (e.g. TensorFlow for training/export) is not installed."""

    exit_code = 9


class RemoteError(EdgekitError):
    """A measurement target reached through SSH failed: unreachable, host key refused,
    edgekit missing or of another version there, or the connection lost mid-run. The message
    names the target."""

    exit_code = 10


class StageFailed(EdgekitError):
    """A stage of a long-running job (``train``, ``compress``, ``eval``) failed. The message
    names the stage, the error, and what the finished stages left behind (checkpoints,
    artifacts, reports) and where; ``kept`` lists those paths. The exit code is the cause's
    when the cause is an :class:`EdgekitError` (a dataset error stays 6, an export error 7),
    else 11."""

    exit_code = 11

    def __init__(
        self,
        message: str,
        *,
        stage: str,
        kept: tuple[str, ...] = (),
        cause: BaseException | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.stage = stage
        self.kept = tuple(kept)
        if isinstance(cause, EdgekitError):
            self.exit_code = cause.exit_code


def error_summary(exc: BaseException, limit: int = 300) -> str:
    """``"Type: message"`` on one line (whitespace collapsed), at most ``limit`` characters:
    what a one-line CLI error can quote of any exception (TensorFlow's span many lines)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, EdgekitError):
        out = text
    else:
        out = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return out if len(out) <= limit else out[: limit - 1] + "…"
