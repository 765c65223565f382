"""The MJPEG broadcaster: one thread sends the newest frame to every stream client.

Once a stream request is answered with its headers, its socket is handed to the
:class:`Broadcaster`, which owns it from then on: non-blocking sends from one thread (no thread
per viewer, so 50 viewers cost 50 ``send`` calls a frame, not 50 thread wake-ups), at most one
frame in flight per client (a memoryview into the one shared frame: newest frame wins, never a
queue), a deadline per frame (a client whose socket has not taken a whole frame within the write
timeout is reset and dropped), and a read watch that notices clients that hang up, or that keep
sending after their request (dropped too).
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgekit.serve.hub import FrameHub

__all__ = ["Broadcaster"]

_log = logging.getLogger("edgekit.serve")
_IDLE_S = 0.5
_MAX_INBOUND = 64 * 1024  # bytes a stream client may send after its request before it is dropped


@dataclass
class _Client:
    conn: socket.socket
    seq: int = 0  # the last frame started
    pending: memoryview | None = None  # what is left of the frame being sent
    deadline: float = 0.0
    inbound: int = 0
    writing: bool = False  # registered for EVENT_WRITE


class Broadcaster:
    """Sends ``hub``'s newest frame to every client added with :meth:`add`.

    ``write_timeout_s``: time a client has to take one whole frame. ``count(key, n)`` adds to
    the server's counters ("frames_sent", "dropped_stalled", "hung_up", "bad_requests",
    "errors"); ``release(conn)`` after a client's
    socket is closed (the server's connection slot). :meth:`close` closes every client and
    joins the thread.
    """

    def __init__(
        self,
        hub: FrameHub,
        *,
        write_timeout_s: float,
        count: Callable[[str, int], None],
        release: Callable[[socket.socket], None],
    ) -> None:
        self.hub = hub
        self.write_timeout_s = write_timeout_s
        self._count = count
        self._release = release
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._incoming: list[socket.socket] = []
        self._lock = threading.Lock()
        self._clients: dict[socket.socket, _Client] = {}
        self._closing = False
        hub.on_publish(self.wake)
        self._thread = threading.Thread(
            target=self._run, name="edgekit-preview-stream", daemon=True
        )
        self._thread.start()

    def add(self, conn: socket.socket) -> None:
        """Take over ``conn`` (its response headers already sent)."""
        with self._lock:
            accepted = not self._closing
            if accepted:
                self._incoming.append(conn)
                self.hub.add_clients(1)  # counted at once: the encoder starts for it
        if not accepted:
            self._close(conn, abort=False)
            return
        self.wake()

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def close(self) -> None:
        with self._lock:
            self._closing = True
        self.wake()
        self._thread.join()
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # a bug: say so, and close every stream rather than hang them
            _log.error("the preview's stream broadcaster failed", exc_info=True)
            self._count("errors", 1)
        finally:
            with self._lock:
                self._closing = True
                incoming, self._incoming = self._incoming, []
            for conn in incoming:
                self._adopt(conn)
            for client in list(self._clients.values()):
                self._drop(client, abort=False)

    def _loop(self) -> None:
        while True:
            with self._lock:
                closing = self._closing
                incoming, self._incoming = self._incoming, []
            if closing:
                return
            for conn in incoming:
                self._adopt(conn)
            self._start_frames()
            for key, mask in self._sel.select(self._timeout()):
                if key.data is None:
                    with contextlib.suppress(BlockingIOError, OSError):
                        self._wake_r.recv(4096)
                    continue
                client: _Client = key.data
                if mask & selectors.EVENT_READ and not self._readable(client):
                    continue
                if mask & selectors.EVENT_WRITE:
                    self._send(client)
            self._expire()

    def _adopt(self, conn: socket.socket) -> None:
        try:
            conn.setblocking(False)
            client = _Client(conn)
            self._sel.register(conn, selectors.EVENT_READ, client)
        except (OSError, ValueError):
            self.hub.add_clients(-1)
            self._close(conn, abort=False)
            return
        self._clients[conn] = client

    def _timeout(self) -> float:
        pending = [c.deadline for c in self._clients.values() if c.pending is not None]
        if not pending:
            return _IDLE_S
        return max(0.0, min(min(pending) - time.monotonic(), _IDLE_S))

    def _start_frames(self) -> None:
        """Every idle client whose last frame is older than the newest starts the newest."""
        latest = self.hub.latest()
        if latest is None:
            return
        seq, part = latest
        for client in list(self._clients.values()):
            if client.pending is None and client.seq < seq:
                client.seq = seq
                client.pending = memoryview(part)
                client.deadline = time.monotonic() + self.write_timeout_s
                self._send(client)

    def _send(self, client: _Client) -> None:
        """Send what the socket takes now; watch for writability while some is left."""
        if client.pending is None:
            return
        try:
            while client.pending:
                sent = client.conn.send(client.pending)
                client.pending = client.pending[sent:]
        except BlockingIOError:
            pass
        except OSError:
            self._drop(client, abort=False, why="hung_up")
            return
        done = not client.pending
        if done:
            client.pending = None
            self._count("frames_sent", 1)
            latest = self.hub.latest()
            if latest is not None and latest[0] > client.seq:  # a newer frame came meanwhile
                client.seq = latest[0]
                client.pending = memoryview(latest[1])
                client.deadline = time.monotonic() + self.write_timeout_s
                self._send(client)
                return
        if done == client.writing:  # done and watching, or not done and not watching
            client.writing = not done
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.writing else 0)
            self._sel.modify(client.conn, events, client)

    def _readable(self, client: _Client) -> bool:
        """Read what the client sent (ignored); False when it hung up or sent too much."""
        try:
            data = client.conn.recv(4096)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            self._drop(client, abort=False, why="hung_up")
            return False
        client.inbound += len(data)
        if client.inbound > _MAX_INBOUND:
            self._drop(client, abort=True, why="bad_requests")
            return False
        return True

    def _expire(self) -> None:
        now = time.monotonic()
        for client in list(self._clients.values()):
            if client.pending is not None and now > client.deadline:
                self._drop(client, abort=True, why="dropped_stalled")

    def _drop(self, client: _Client, *, abort: bool, why: str | None = None) -> None:
        if self._clients.pop(client.conn, None) is None:
            return
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._sel.unregister(client.conn)
        self.hub.add_clients(-1)
        if why is not None:
            self._count(why, 1)
        self._close(client.conn, abort=abort)

    def _close(self, conn: socket.socket, *, abort: bool) -> None:
        """Close a client's socket; ``abort`` resets it (SO_LINGER 0), discarding the frames
        queued for a client that stopped reading and freeing their kernel memory at once."""
        with contextlib.suppress(OSError):
            if abort:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                conn.shutdown(socket.SHUT_RDWR)
        conn.close()
        self._release(conn)
