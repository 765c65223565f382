"""The preview's HTTP server: the page, an MJPEG stream and two JSON endpoints.

Standard library only (:class:`http.server.ThreadingHTTPServer`, one thread per connection).

- ``/`` the page (:mod:`edgekit.serve.page`); ``/stream.mjpg`` annotated frames as
  ``multipart/x-mixed-replace`` JPEGs, the newest one each time the client is ready;
  ``/stats.json`` FPS and per-stage p50/p99 over a sliding window; ``/detections.json`` the
  latest frame in the JSONL schema (:func:`edgekit.io.sinks.result_to_json`). Anything else: 404.
- Bound to 127.0.0.1 by default. With a token (always, when bound anywhere but loopback),
  every request must carry it, as ``?token=...`` or ``Authorization: Bearer ...``; it is
  compared in constant time, and a request without it gets 401.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import secrets
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from edgekit.errors import SinkError, UsageError
from edgekit.serve.hub import FrameHub
from edgekit.serve.page import PAGE
from edgekit.serve.stats import StatsWindow

__all__ = [
    "BOUNDARY",
    "DEFAULT_HOST",
    "PreviewServer",
    "is_loopback",
    "new_token",
    "parse_bind",
]

DEFAULT_HOST = "127.0.0.1"
BOUNDARY = "edgekitframe"
_WILDCARD = ("", "0.0.0.0", "::")
_CLIENT_POLL_S = 0.5
_SOCKET_TIMEOUT_S = 10.0


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


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: PreviewServer) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.app = app
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Track the socket at accept time, before its handler thread starts, so close() can
        # always wake it (a handler not yet scheduled would otherwise sit in its read timeout).
        self.app._track(request, True)
        super().process_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.0"
    server_version = "edgekit-preview"
    timeout = _SOCKET_TIMEOUT_S

    def setup(self) -> None:
        super().setup()
        self.server.app._track(self.connection, True)

    def finish(self) -> None:
        self.server.app._track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the loop's console output is what the user reads."""

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
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
            self._send(
                401,
                b"401: a token is required (?token=... or Authorization: Bearer ...)\n",
                "text/plain; charset=utf-8",
                WWW_Authenticate='Bearer realm="edgekit"',
            )
            return
        try:
            if parts.path in ("/", "/index.html"):
                self._send(200, PAGE.encode(), "text/html; charset=utf-8")
            elif parts.path == "/stream.mjpg":
                self._stream(app.hub)
            elif parts.path == "/stats.json":
                data = app.stats.snapshot()
                data["clients"] = app.hub.clients
                self._json(data)
            elif parts.path == "/detections.json":
                self._json(app.latest_json())
            else:
                self._json({"error": f"not found: {parts.path}"}, 404)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the client went away or stopped reading
        except OSError:
            if not app.closing:
                raise

    def _stream(self, hub: FrameHub) -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Pragma", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        seq = 0
        with hub.client():
            while not hub.closed:
                got = hub.wait_newer(seq, _CLIENT_POLL_S)
                if got is None:
                    continue
                seq, jpeg = got
                head = (
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n"
                ).encode()
                self.wfile.write(head + jpeg + b"\r\n")


class PreviewServer:
    """Serve ``hub`` and ``stats`` over HTTP on ``host:port`` (port 0: any free port).

    ``token=None`` on a non-loopback host generates one (see :attr:`token`, :attr:`url`).
    Binds at construction (a busy port raises :class:`SinkError`); :meth:`start` serves on a
    background thread; :meth:`close` stops it, closes every connection and joins all threads.
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
    ) -> None:
        if token is not None and not token.strip():
            raise UsageError("the preview token must not be empty")
        if token is None and not is_loopback(host):
            token = new_token()
        self.hub, self.stats, self.token = hub, stats, token
        self._latest_json = latest_json
        self._connections: set[socket.socket] = set()
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

    @property
    def url(self) -> str:
        """The page's address, with the token when one is required."""
        base = f"http://{_url_host(self.host)}:{self.port}/"
        return base + (f"?token={quote(self.token)}" if self.token else "")

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if not add:
                self._connections.discard(conn)
                return
            self._connections.add(conn)
            if not self.closing:
                return
        with contextlib.suppress(OSError):  # accepted while closing: end it at once
            conn.shutdown(socket.SHUT_RDWR)

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
        if self.closing:
            return
        self.closing = True
        self.hub.close()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
