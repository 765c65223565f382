"""The preview's HTTP server: the page, an MJPEG stream and two JSON endpoints.

Standard library only: :class:`http.server.ThreadingHTTPServer` answers each request on its
own thread; an MJPEG stream, once its headers are sent, is handed to one broadcaster thread
(:mod:`edgekit.serve.stream`) that sends every frame to every viewer.

- ``/`` the page (:mod:`edgekit.serve.page`); ``/stream.mjpg`` annotated frames as
  ``multipart/x-mixed-replace`` JPEGs, the newest one each time the client is ready;
  ``/stats.json`` FPS and per-stage p50/p99 over a sliding window, plus the server's own
  counters; ``/detections.json`` the latest frame in the JSONL schema
  (:func:`edgekit.io.sinks.result_to_json`). Anything else: 404. Only ``GET``: 405 otherwise.
  Paths are matched exactly and nothing is ever read from disk, so ``/../etc/passwd`` and its
  encodings are just 404s.
- Bound to 127.0.0.1 by default. With a token (always, when bound anywhere but loopback),
  every request must carry it, as ``?token=...`` or ``Authorization: Bearer ...``; it is
  compared in constant time (:func:`hmac.compare_digest`), and a request without it gets 401.
- Under load (:class:`PreviewLimits`): at most ``max_connections`` at once, further ones get a
  503 and are closed without a thread; a request head must arrive whole within
  ``request_timeout_s`` and within ``max_request_bytes`` (else 408 / 431 / 414); each stream
  client takes the newest frame when it is ready for one (never a queue), and one whose socket
  does not take a whole frame within ``write_timeout_s`` (a viewer that stopped reading or
  reads a few bytes a second) is dropped, without holding up the others. Stream sockets get a
  bounded kernel send buffer, so a stalled viewer holds at most that much memory.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import ipaddress
import json
import logging
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from edgekit.errors import SinkError, UsageError
from edgekit.serve.hub import FrameHub
from edgekit.serve.page import PAGE
from edgekit.serve.stats_window import StatsWindow
from edgekit.serve.stream import Broadcaster

__all__ = [
    "BOUNDARY",
    "DEFAULT_HOST",
    "PreviewLimits",
    "PreviewServer",
    "frame_part",
    "is_loopback",
    "new_token",
    "parse_bind",
]

DEFAULT_HOST = "127.0.0.1"
BOUNDARY = "edgekitframe"
_WILDCARD = ("", "0.0.0.0", "::")
_LINGER_S = 1.0  # how long a refused connection is drained before it is closed
_log = logging.getLogger("edgekit.serve")


@dataclass(frozen=True)
class PreviewLimits:
    """What one preview server accepts. ``max_connections``: open connections at once
    (streams and requests together); ``request_timeout_s``: time for a whole request head;
    ``max_request_bytes``: size of a request head (request line and headers);
    ``write_timeout_s``: time a client's socket may take to accept one whole response or
    stream frame before the client is dropped; ``send_buffer_bytes``: kernel send buffer of a
    stream socket (what a stalled viewer can hold)."""

    max_connections: int = 100
    request_timeout_s: float = 5.0
    max_request_bytes: int = 8192
    write_timeout_s: float = 5.0
    send_buffer_bytes: int = 128 * 1024

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise UsageError(f"max_connections must be >= 1, got {self.max_connections}")
        if self.request_timeout_s <= 0 or self.write_timeout_s <= 0:
            raise UsageError("preview timeouts must be > 0 seconds")
        if self.max_request_bytes < 256:
            raise UsageError(f"max_request_bytes must be >= 256, got {self.max_request_bytes}")
        if self.send_buffer_bytes < 4096:
            raise UsageError(f"send_buffer_bytes must be >= 4096, got {self.send_buffer_bytes}")


def frame_part(jpeg: bytes) -> bytes:
    """One part of the MJPEG stream (boundary, headers, the JPEG, CRLF), built once per frame
    and sent as is to every client."""
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    return head.encode() + jpeg + b"\r\n"


def parse_bind(text: str | int, *, default_host: str = DEFAULT_HOST) -> tuple[str, int]:
    """``"8080"`` -> (default_host, 8080); ``"0.0.0.0:8080"``, ``"[::1]:8080"``, ``":8080"``
    (all interfaces) -> (host, port). Port 0 asks the system for a free port."""
    raw = str(text).strip()
    host, sep, port_text = raw.rpartition(":")
    if not sep:
        host, port_text = default_host, raw
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise UsageError(f"--serve {raw!r}: write an IPv6 address in brackets, e.g. [::1]:8080")
    elif host == "":
        host = "0.0.0.0"
    try:
        port = int(port_text)
    except ValueError:
        raise UsageError(
            f"--serve {raw!r}: expected [HOST:]PORT, e.g. 8080 or 0.0.0.0:8080"
        ) from None
    if not 0 <= port <= 65535:
        raise UsageError(f"--serve {raw!r}: port must be 0..65535, got {port}")
    return host, port


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1); False for any other
    name or address, including the wildcards."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    """A random URL-safe token (128 bits)."""
    return secrets.token_urlsafe(16)


def _url_host(host: str) -> str:
    if host in _WILDCARD:
        host = socket.gethostname()
    return f"[{host}]" if ":" in host else host


def _plain_response(status: int, reason: str, text: str, **headers: str) -> bytes:
    body = (text + "\n").encode()
    lines = [
        f"HTTP/1.0 {status} {reason}",
        "Server: edgekit-preview",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


_BUSY = _plain_response(503, "Service Unavailable", "503: too many connections", Retry_After="2")


class _HeadError(Exception):
    """A request head that cannot be read: ``status`` is the answer (0: none, just close)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def read_head(conn: socket.socket, deadline: float, max_bytes: int) -> bytes:
    """The request head (request line + headers, up to the blank line) read from ``conn`` by
    ``deadline`` (``time.monotonic``), at most ``max_bytes``; ``b""`` when the client closed
    before sending anything. Raises :class:`_HeadError` (408, 414, 431 or 400)."""
    buf = bytearray()
    while True:
        for end in (b"\r\n\r\n", b"\n\n"):
            at = buf.find(end)
            if at >= 0:
                return bytes(buf[: at + len(end)])
        if len(buf) >= max_bytes:
            if b"\n" not in buf:
                raise _HeadError(414, "request line too long")
            raise _HeadError(431, "request head too large")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _HeadError(408, "request head not received in time")
        conn.settimeout(remaining)
        try:
            chunk = conn.recv(max_bytes - len(buf))
        except TimeoutError:
            raise _HeadError(408, "request head not received in time") from None
        if not chunk:
            if buf:
                raise _HeadError(400, "connection closed inside the request head")
            return b""
        buf += chunk


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], app: PreviewServer) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.app = app
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Admission at accept time, in the serving thread: over the cap (or closing), the
        # connection is answered 503 and closed without starting a thread for it.
        if not self.app._admit(request):
            self.app._refuse(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        if self.app._handed_off(request):  # a stream: the broadcaster owns the socket now
            return
        self.app._release(request)
        super().shutdown_request(request)

    def service_actions(self) -> None:
        self.app._drain_refused()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A handler that failed: counted and logged at debug, never a traceback on stderr."""
        self.app._count("errors")
        _log.debug("preview request from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.0"
    default_request_version = "HTTP/1.0"  # a malformed request still gets a status line
    server_version = "edgekit-preview"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.app.limits.write_timeout_s)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the loop's console output is what the user reads."""

    def handle(self) -> None:
        """One request per connection: read the head within the limits, parse it with the
        standard library, answer GET only."""
        app = self.server.app
        limits = app.limits
        self.close_connection = True
        try:
            head = read_head(
                self.connection,
                time.monotonic() + limits.request_timeout_s,
                limits.max_request_bytes,
            )
        except _HeadError as exc:
            app._count("timed_out" if exc.status == 408 else "bad_requests")
            self.connection.settimeout(limits.write_timeout_s)
            with contextlib.suppress(OSError):
                self.connection.sendall(_plain_response(exc.status, str(exc), f"{exc.status}"))
            return
        except OSError:
            return
        if not head:
            return
        self.connection.settimeout(limits.write_timeout_s)
        self.rfile = io.BytesIO(head)
        self.raw_requestline = self.rfile.readline(limits.max_request_bytes + 1)
        try:
            if not self.parse_request():  # answered 400 / 431 / 505 itself
                app._count("bad_requests")
                return
            if self.command != "GET":
                app._count("bad_requests")
                self.send_response(405)
                self._headers("text/plain; charset=utf-8", 0, Allow="GET")
                return
            self.do_GET()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the client went away or stopped reading
        except OSError:
            if not app.closing:
                raise

    def _headers(self, content_type: str, length: int, **headers: str) -> None:
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self._headers(content_type, len(body), **headers)
        self.wfile.write(body)

    def _json(self, data: Any, status: int = 200) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _authorized(self, query: dict[str, list[str]]) -> bool:
        token = self.server.app.token
        if token is None:
            return True
        given = query.get("token", [""])[0]
        auth = self.headers.get("Authorization", "")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return hmac.compare_digest(given.encode(), token.encode())

    def do_GET(self) -> None:
        app = self.server.app
        parts = urlsplit(self.path)
        if not self._authorized(parse_qs(parts.query)):
            app._count("unauthorized")
            self._send(
                401,
                b"401: a token is required (?token=... or Authorization: Bearer ...)\n",
                "text/plain; charset=utf-8",
                WWW_Authenticate='Bearer realm="edgekit"',
            )
            return
        if parts.path in ("/", "/index.html"):
            self._send(200, PAGE.encode(), "text/html; charset=utf-8")
        elif parts.path == "/stream.mjpg":
            self._stream(app.hub)
        elif parts.path == "/stats.json":
            data = app.stats.snapshot()
            data["clients"] = app.hub.clients
            data["server"] = app.counts()
            self._json(data)
        elif parts.path == "/detections.json":
            self._json(app.latest_json())
        else:
            self._json({"error": "not found"}, 404)

    def _stream(self, hub: FrameHub) -> None:
        """Answer with the multipart headers, then hand the socket to the broadcaster, which
        sends every frame from then on (this handler thread ends here)."""
        app = self.server.app
        with contextlib.suppress(OSError):
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, app.limits.send_buffer_bytes
            )
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Pragma", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        app._hand_off(self.connection)


class PreviewServer:
    """Serve ``hub`` and ``stats`` over HTTP on ``host:port`` (port 0: any free port).

    ``token=None`` on a non-loopback host generates one (see :attr:`token`, :attr:`url`).
    ``limits`` bounds connections, request heads and slow clients (:class:`PreviewLimits`).
    Binds at construction (a busy port raises :class:`SinkError`); :meth:`start` serves on a
    background thread; :meth:`close` stops it, closes every connection and joins all threads.
    The hub holds pre-framed MJPEG parts (:func:`frame_part`).
    """

    def __init__(
        self,
        hub: FrameHub,
        stats: StatsWindow,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        token: str | None = None,
        latest_json: Any = None,
        limits: PreviewLimits | None = None,
    ) -> None:
        if token is not None and not token.strip():
            raise UsageError("the preview token must not be empty")
        if token is None and not is_loopback(host):
            token = new_token()
        self.hub, self.stats, self.token = hub, stats, token
        self.limits = limits or PreviewLimits()
        self._latest_json = latest_json
        self._connections: set[socket.socket] = set()
        self._refused: list[tuple[socket.socket, float]] = []  # draining before close
        self._counts = dict.fromkeys(
            (
                "accepted",
                "refused",
                "dropped_stalled",
                "timed_out",
                "bad_requests",
                "unauthorized",
                "errors",
                "frames_sent",
                "hung_up",
            ),
            0,
        )
        self._streams: set[socket.socket] = set()  # handed to the broadcaster
        self._lock = threading.Lock()
        self.closing = False
        try:
            self._httpd = _HTTPServer((host, port), self)
        except OSError as exc:
            raise SinkError(
                f"cannot serve the preview on {host}:{port}: {exc.strerror or exc}",
                hint="choose another port with --serve, or 0 for any free one",
            ) from exc
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread: threading.Thread | None = None
        self._broadcaster = Broadcaster(
            hub,
            write_timeout_s=self.limits.write_timeout_s,
            count=self._count,
            release=self._release,
        )

    @property
    def url(self) -> str:
        """The page's address, with the token when one is required."""
        base = f"http://{_url_host(self.host)}:{self.port}/"
        return base + (f"?token={quote(self.token)}" if self.token else "")

    @property
    def connections(self) -> int:
        """Connections open now (streams and requests)."""
        return len(self._connections)

    def counts(self) -> dict[str, int]:
        """Since start: ``accepted``, ``refused`` (503, over the cap), ``dropped_stalled``
        (stream clients past the write timeout), ``timed_out`` (no whole request head in
        time), ``bad_requests`` (malformed, oversized, not GET), ``unauthorized`` (401),
        ``errors`` (handler failures), ``frames_sent``, ``hung_up`` (stream clients that went
        away); and ``connections`` open now."""
        with self._lock:
            out = dict(self._counts)
            out["connections"] = len(self._connections)
        return out

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def _hand_off(self, conn: socket.socket) -> None:
        with self._lock:
            self._streams.add(conn)
        self._broadcaster.add(conn)

    def _handed_off(self, conn: socket.socket) -> bool:
        with self._lock:
            if conn in self._streams:
                self._streams.discard(conn)
                return True
            return False

    def _admit(self, conn: socket.socket) -> bool:
        with self._lock:
            if self.closing or len(self._connections) >= self.limits.max_connections:
                self._counts["refused"] += 1
                return False
            self._connections.add(conn)
            self._counts["accepted"] += 1
            return True

    def _release(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    def _refuse(self, conn: socket.socket) -> None:
        """503 and close, from the accepting thread: never blocks. The client's request is
        drained for up to a second first (closing with unread data would reset the
        connection and could discard the 503 before the client reads it)."""
        try:
            conn.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                conn.recv(65536)
            conn.send(_BUSY)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            conn.close()
            return
        with self._lock:
            if len(self._refused) < self.limits.max_connections and not self.closing:
                self._refused.append((conn, time.monotonic() + _LINGER_S))
                return
        conn.close()

    def _drain_refused(self) -> None:
        """Close refused connections once the client closed or a second passed."""
        now = time.monotonic()
        with self._lock:
            waiting, self._refused = self._refused, []
        keep = []
        for conn, deadline in waiting:
            done = now >= deadline
            if not done:
                try:
                    done = conn.recv(65536) == b""
                except BlockingIOError:
                    pass
                except OSError:
                    done = True
            if done:
                conn.close()
            else:
                keep.append((conn, deadline))
        with self._lock:
            self._refused.extend(keep)

    def latest_json(self) -> dict[str, Any]:
        return self._latest_json() if self._latest_json is not None else {}

    def start(self) -> PreviewServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="edgekit-preview",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving: wake the stream clients, close their sockets, join every thread."""
        with self._lock:
            if self.closing:
                return
            self.closing = True
        self.hub.close()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        with self._lock:
            connections = list(self._connections)
            refused, self._refused = self._refused, []
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for conn, _ in refused:
            conn.close()
        self._broadcaster.close()
        self._httpd.server_close()
