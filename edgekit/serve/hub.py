"""The newest-frame hand-off between the preview's encoder (one writer) and any number of
HTTP clients.

:meth:`FrameHub.publish` never blocks on clients: it replaces the one frame held (an encoded
MJPEG part, the same bytes for every client) and wakes whoever waits (:meth:`wait_newer`, or a
listener such as the preview's stream broadcaster); each client takes the newest frame when it
is ready for one, so a slow client skips frames instead of holding anything up, and no client
ever has more than that one frame waiting for it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

__all__ = ["FrameHub"]


class FrameHub:
    """One frame (the newest), its sequence number, and how many stream clients are connected."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self._clients = 0
        self._closed = False
        self._listeners: list[Callable[[], None]] = []

    def on_publish(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (quick, non-blocking) after every publish and at close."""
        with self._cond:
            self._listeners.append(listener)

    def latest(self) -> tuple[int, bytes] | None:
        """The newest frame and its number, or None before the first one."""
        with self._cond:
            return None if self._jpeg is None else (self._seq, self._jpeg)

    @property
    def clients(self) -> int:
        """Stream clients connected now (a plain read: the writer polls it every frame)."""
        return self._clients

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def seq(self) -> int:
        """How many frames were published so far."""
        return self._seq

    def publish(self, frame: bytes) -> int:
        """Make ``frame`` the newest frame; returns its sequence number (1, 2, ...)."""
        with self._cond:
            self._jpeg = frame
            self._seq += 1
            self._cond.notify_all()
            seq, listeners = self._seq, list(self._listeners)
        for listener in listeners:
            listener()
        return seq

    def wait_newer(self, seq: int, timeout: float) -> tuple[int, bytes] | None:
        """The newest frame if its number is above ``seq``, waiting up to ``timeout`` seconds
        for one; ``None`` on timeout or once the hub is closed."""
        with self._cond:
            if self._seq <= seq and not self._closed:
                self._cond.wait_for(lambda: self._seq > seq or self._closed, timeout)
            if self._closed or self._seq <= seq or self._jpeg is None:
                return None
            return self._seq, self._jpeg

    def add_clients(self, n: int) -> None:
        """Count ``n`` more (or, negative, fewer) stream clients."""
        with self._cond:
            self._clients += n

    @contextlib.contextmanager
    def client(self) -> Iterator[None]:
        """Count a stream client for the duration of the ``with`` block."""
        self.add_clients(1)
        try:
            yield
        finally:
            self.add_clients(-1)

    def close(self) -> None:
        """Wake every waiting client for good; later waits return ``None`` at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            listener()
