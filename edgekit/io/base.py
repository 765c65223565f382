"""What every frame source shares: the :class:`Source` protocol and :class:`BaseSource` (context
manager, idempotent ``close``, frame numbering). The sources themselves are in
:mod:`edgekit.io.sources`, :mod:`edgekit.io.picamera` and :mod:`edgekit.io.testcard`.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Protocol, TypeVar, runtime_checkable

import cv2
import numpy as np

from edgekit.core.types import Frame

__all__ = ["BaseSource", "Closing", "Source", "bgr_to_rgb"]

_C = TypeVar("_C", bound="Closing")


class Closing:
    """Context manager plumbing for sources and sinks: ``with x:`` calls ``x.close()`` on the
    way out."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@runtime_checkable
class Source(Protocol):
    """An iterable of RGB frames that can be closed."""

    name: str
    live: bool

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


class BaseSource(Closing):
    """Shared plumbing: context manager, idempotent ``close``, frame numbering."""

    name: str = "source"
    live: bool = False
    fps: float | None = None

    def __init__(self) -> None:
        self._closed = False
        self._next_index = 0

    def __iter__(self) -> Iterator[Frame]:
        return self._frames()

    def _frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def _frame(
        self, image: np.ndarray, source: str, timestamp_ns: int, lores: np.ndarray | None = None
    ) -> Frame:
        frame = Frame(image, self._next_index, timestamp_ns, source, lores)
        self._next_index += 1
        return frame

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release()

    def _release(self) -> None:
        """Free the underlying device or file; called once by :meth:`close`."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, live={self.live})"


def bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    """An OpenCV image (gray, BGR or BGRA, uint8) -> contiguous RGB uint8 (H, W, 3)."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
