"""Keep TensorFlow's own log lines off the terminal while a command runs (``edgekit -v`` shows them).

TensorFlow 2.21 prints its C++ logs (oneDNN, CUDA probing, CPU features, SavedModel loading,
the MLIR converter) through absl, most of them while its libraries load, before
``TF_CPP_MIN_LOG_LEVEL`` is read, so no environment variable silences them. So, on POSIX,
the moment TensorFlow (or Keras) is first imported, file descriptor 2 is routed through a small
filter process that drops those INFO and WARNING lines and the known harmless errors of a
machine without a GPU, and passes everything else through unchanged: real errors and fatal
messages, tracebacks, edgekit's own output. The filter is a separate process so that nothing
written just before a crash is lost. Commands that never import TensorFlow (``detect``,
``info``, ``bench``...) run exactly as before.

Besides: ``TF_CPP_MIN_LOG_LEVEL=2`` (when not set), the ``tensorflow`` and ``absl`` Python
loggers at ERROR, and Python warnings raised inside TensorFlow/Keras ignored. Everything is
restored when the command returns. ``TF_ENABLE_ONEDNN_OPTS`` is left alone: turning oneDNN off
would change numerics and training speed just to hide its start-up notice, which the filter
drops anyway.

When stderr is a terminal the filter reads a pseudo-terminal, so the command still sees a
terminal (colours, progress bars, width); partial lines are passed on at once unless they may
still become a noise line. This module is also the filter program itself (``python quiet.py``:
stdin -> stdout); keep it standard-library only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from typing import Any

__all__ = ["NOISE", "Quiet", "is_noise", "quiet", "release"]

TRIGGERS = ("tensorflow", "keras", "tf_keras", "tensorflow_model_optimization")
ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}
LOGGERS = ("tensorflow", "absl")
WARNING_MODULES = r"(tensorflow|keras|tf_keras|absl|tensorflow_model_optimization)(\..*)?$"

# absl/glog line prefix after the severity letter: MMDD hh:mm:ss.micros thread file:line]
# (before absl is initialised the "seconds" are the Unix time, hence \d+).
_PREFIX = r"\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] "
#: Lines dropped while quiet: absl/glog INFO and WARNING lines, and what TensorFlow prints on
#: every start on a machine without a GPU (at ERROR level, but harmless).
NOISE: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        r"^[IW]" + _PREFIX,
        r"^E" + _PREFIX + r"failed call to cuInit",
        r"^E" + _PREFIX + r"Unable to register cu(DNN|FFT|BLAS) factory",
        r"^E" + _PREFIX + r".*computation placer already registered",
        r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
        r"^To enable the following instructions: .* rebuild TensorFlow with the appropriate",
        r"^fully_quantize: \d+, inference_type: \d+, input_inference_type: ",
    )
)


def is_noise(line: str) -> bool:
    """True for a TensorFlow log line that the quiet mode drops."""
    return any(p.match(line) for p in NOISE)


# A partial line starting with one of these may still become a noise line: held until its end.
_NOISE_FIRST = frozenset("IWETf")
_HOLD_LIMIT = 1024


def _filter(read: Any, write: Any) -> None:
    """Copy bytes from ``read(n)`` to ``write(data)`` without the noise lines.

    Complete lines are checked against :data:`NOISE`. A partial line is passed on at once
    unless it could still turn into a noise line (so a progress bar redrawn with carriage
    returns shows live); once part of a line is passed on, the rest of it follows unchecked."""
    pending = b""
    passing = False  # the start of the current line was already written
    while True:
        try:
            chunk = read(65536)
        except OSError:  # a pseudo-terminal whose other side closed (EIO): the end
            chunk = b""
        if not chunk:
            break
        pending += chunk
        out = []
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if passing or not is_noise(line.decode("utf-8", errors="replace").rstrip("\r")):
                out.append(line + b"\n")
            passing = False
        if pending and (
            passing or len(pending) > _HOLD_LIMIT or chr(pending[0]) not in _NOISE_FIRST
        ):
            out.append(pending)
            pending, passing = b"", True
        if out:
            write(b"".join(out))
    if pending and (passing or not is_noise(pending.decode("utf-8", errors="replace"))):
        write(pending)


def _copy_window_size(src: int, dst: int) -> None:
    """Give the pseudo-terminal ``dst`` the size of the terminal ``src`` (rich reads it)."""
    import fcntl
    import termios

    with contextlib.suppress(OSError):
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)


class Quiet:
    """Quiet mode for one command: :meth:`start` it, :meth:`release` it (``-v``) or
    :meth:`stop` it when the command returns. Only ``stop`` undoes everything."""

    def __init__(self) -> None:
        self._env: list[str] = []
        self._levels: dict[str, int] = {}
        self._warnings: Any = None
        self._finder: Any = None
        self._saved_fd: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        for key, value in ENV.items():
            if key not in os.environ:
                os.environ[key] = value
                self._env.append(key)
        for name in LOGGERS:
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            logger.setLevel(logging.ERROR)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.filterwarnings("ignore", module=WARNING_MODULES)
        if os.name == "posix" and not any(name in sys.modules for name in TRIGGERS):
            self._finder = _OnFirstImport(self._start_filter)
            sys.meta_path.insert(0, self._finder)

    def release(self) -> None:
        """Show everything from now on (``-v``): before TensorFlow is imported, it is as if
        quiet mode had never started."""
        self._remove_finder()
        self._stop_filter()
        for key in self._env:
            os.environ.pop(key, None)
        self._env = []
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        self._levels = {}
        if self._warnings is not None:
            self._warnings.__exit__(None, None, None)
            self._warnings = None

    def stop(self) -> None:
        self.release()

    def _remove_finder(self) -> None:
        if self._finder is not None:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(self._finder)
            self._finder = None

    def _start_filter(self) -> None:
        self._remove_finder()
        if self._proc is not None:
            return
        try:
            sys.stderr.flush()
            # A terminal stays a terminal (isatty, width) for what the command prints next.
            if os.isatty(2):
                read_end, write_end = os.openpty()
                _copy_window_size(2, write_end)
            else:
                read_end, write_end = os.pipe()
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", os.path.abspath(__file__)],
                    stdin=read_end,
                    stdout=2,
                    stderr=2,
                )
            finally:
                os.close(read_end)
            self._saved_fd = os.dup(2)
            os.dup2(write_end, 2)
            os.close(write_end)
        except OSError:  # no filter: TensorFlow's lines show, nothing else changes
            self._proc = None

    def _stop_filter(self) -> None:
        if self._saved_fd is None:
            return
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(self._saved_fd, 2)  # drops the last write end: the filter sees EOF
        os.close(self._saved_fd)
        self._saved_fd = None
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)  # a child of the command may still hold the pipe
            self._proc = None


class _OnFirstImport:
    """A meta-path finder that calls ``hook`` when one of :data:`TRIGGERS` is first imported
    (and then steps aside: the import itself proceeds normally)."""

    def __init__(self, hook: Any) -> None:
        self.hook = hook

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] in TRIGGERS:
            self.hook()
        return None


_current: Quiet | None = None


@contextlib.contextmanager
def quiet() -> Iterator[Quiet]:
    """Quiet mode for the duration of the block (one CLI command)."""
    global _current
    state = Quiet()
    state.start()
    _current = state
    try:
        yield state
    finally:
        _current = None
        state.stop()


def release() -> None:
    """``-v``: end quiet mode for the running command (no-op outside :func:`quiet`)."""
    if _current is not None:
        _current.release()


if __name__ == "__main__":  # the filter process
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the command, which closes us

    def _write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(1, view) :]

    _filter(lambda n: os.read(0, n), _write)
