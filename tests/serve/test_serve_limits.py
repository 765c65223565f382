"""The preview against hostile or broken clients: malformed and oversized requests, slow request
heads, path traversal, wrong tokens, too many connections. Raw sockets on loopback only, so the
exact bytes sent are the ones written here."""

from __future__ import annotations

import socket
import time

import pytest
from preview_helpers import make_result, wait_for

from edgekit.errors import UsageError
from edgekit.serve import PreviewLimits, PreviewSink
from edgekit.serve.server import read_head

LIMITS = PreviewLimits(
    max_connections=4, request_timeout_s=1.0, max_request_bytes=2048, write_timeout_s=1.0
)


@pytest.fixture
def sink():
    s = PreviewSink("127.0.0.1", 0, limits=LIMITS)
    try:
        yield s
    finally:
        s.close()


def connect(port: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn.settimeout(5)
    return conn


def read_all(conn: socket.socket, limit: int = 1 << 20) -> bytes:
    data = b""
    while len(data) < limit:
        try:
            chunk = conn.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def ask(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as is; (status, headers, body) of the answer, read to the close."""
    with connect(port) as conn:
        conn.sendall(request)
        data = read_all(conn)
    return parse(data)


def parse(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.0 extra words\r\n\r\n", 400),
        (b"GET / HTTP/x.y\r\n\r\n", 400),
        (b"GET / HTTP/3.0\r\n\r\n", 505),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),  # a TLS hello
        (b"POST /stats.json HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello", 405),
        (b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"HEAD / HTTP/1.0\r\n\r\n", 405),
        (b"GET /" + b"a" * 4000 + b" HTTP/1.0\r\n\r\n", 414),
        (b"GET / HTTP/1.0\r\nX-Pad: " + b"p" * 3000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.0\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(300)) + b"\r\n", 431),
    ],
)
def test_malformed_and_oversized_requests_get_a_clean_error(sink, request_bytes, status):
    got, headers, _ = ask(sink.port, request_bytes)
    assert got == status
    if status == 405:
        assert headers["allow"] == "GET"
    assert sink.server.counts()["bad_requests"] == 1
    # and the server still serves
    assert ask(sink.port, b"GET /stats.json HTTP/1.0\r\n\r\n")[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/../etc/passwd",
        "/../../../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2f..%2fetc%2fpasswd",
        "//etc/passwd",
        "/stream.mjpg/../../etc/passwd",
        "/index.html/../../etc/passwd",
        "/.%00./etc/passwd",
        "/%252e%252e/etc/passwd",
        "/C:\\Windows\\win.ini",
        "http://127.0.0.1/../etc/passwd",
    ],
)
def test_path_traversal_is_just_not_found(sink, path):
    status, headers, body = ask(sink.port, f"GET {path} HTTP/1.0\r\n\r\n".encode())
    assert status == 404 and headers["content-type"] == "application/json"
    assert body == b'{"error": "not found"}'  # the path is not echoed, no file is read


def test_a_request_head_that_trickles_in_is_cut_at_the_timeout(sink):
    """Slowloris: a byte every 0.2 s never completes the head; 408 after request_timeout_s."""
    with connect(sink.port) as conn:
        t0 = time.monotonic()
        conn.sendall(b"GET / HTTP/1.0\r\n")
        answer = b""
        for _ in range(40):
            try:
                conn.sendall(b"X")
            except OSError:
                break
            conn.settimeout(0.2)
            try:
                answer = conn.recv(4096)
            except TimeoutError:
                continue
            break
        elapsed = time.monotonic() - t0
    assert answer.startswith(b"HTTP/1.0 408 ")
    assert 0.9 < elapsed < 4.0  # LIMITS.request_timeout_s is 1 s: cut there, not at 8 s
    assert sink.server.counts()["timed_out"] == 1


def test_a_silent_connection_is_closed_at_the_timeout(sink):
    with connect(sink.port) as conn:
        t0 = time.monotonic()
        data = read_all(conn)
    assert data.startswith(b"HTTP/1.0 408 ") and time.monotonic() - t0 < 4.0
    wait_for(lambda: sink.server.connections == 0)


def test_too_many_connections_are_refused_cleanly(sink):
    streams = []
    try:
        for _ in range(LIMITS.max_connections):
            conn = connect(sink.port)
            conn.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
            streams.append(conn)
        wait_for(lambda: sink.hub.clients == LIMITS.max_connections)
        for _ in range(3):
            status, headers, body = ask(sink.port, b"GET /stats.json HTTP/1.0\r\n\r\n")
            assert status == 503 and headers["retry-after"] == "2"
            assert body == b"503: too many connections\n"
        counts = sink.server.counts()
        assert counts["refused"] == 3 and counts["connections"] == LIMITS.max_connections
        # the ones already in are served meanwhile
        sink.write(make_result(0))
        for conn in streams:
            head = conn.recv(4096)
            assert head.startswith(b"HTTP/1.0 200 ")
        # one leaves: room for the next
        streams.pop().close()
        wait_for(lambda: sink.server.connections < LIMITS.max_connections)
        assert ask(sink.port, b"GET /stats.json HTTP/1.0\r\n\r\n")[0] == 200
    finally:
        for conn in streams:
            conn.close()


def test_wrong_or_missing_token_beyond_loopback_is_401_for_every_path():
    with PreviewSink("0.0.0.0", 0, limits=LIMITS) as sink:
        token = sink.token
        assert token
        for path in ("/", "/stream.mjpg", "/stats.json", "/../etc/passwd", "/nope"):
            for auth in ("", "?token=wrong", "?token=" + token.upper(), "?token=" + token + "x"):
                status, headers, body = ask(
                    sink.port, f"GET {path}{auth} HTTP/1.0\r\n\r\n".encode()
                )
                assert status == 401 and headers["www-authenticate"].startswith("Bearer")
                assert b"not found" not in body
        bearer = f"GET /stats.json HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n"
        assert ask(sink.port, bearer.encode())[0] == 200
        assert sink.server.counts()["unauthorized"] == 20


def test_read_head_limits():
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\nleftover")
        assert read_head(b, time.monotonic() + 1, 1024) == b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"
    a, b = socket.socketpair()
    with a, b:
        a.close()
        assert read_head(b, time.monotonic() + 1, 1024) == b""  # closed before a request


def test_limits_are_validated():
    for bad in (
        {"max_connections": 0},
        {"request_timeout_s": 0},
        {"write_timeout_s": -1},
        {"max_request_bytes": 10},
        {"send_buffer_bytes": 10},
    ):
        with pytest.raises(UsageError):
            PreviewLimits(**bad)


def test_connection_churn_leaves_nothing_behind(sink):
    """200 requests and 30 stream viewers coming and going: every connection and handler
    thread is released (nothing grows with the number of clients served)."""
    import threading

    before = threading.active_count()
    for _ in range(200):
        assert ask(sink.port, b"GET /stats.json HTTP/1.0\r\n\r\n")[0] == 200
    for k in range(30):
        with connect(sink.port) as conn:
            conn.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
            wait_for(lambda: sink.hub.clients == 1)
            sink.write(make_result(k))
            assert conn.recv(4096).startswith(b"HTTP/1.0 200 ")
    wait_for(lambda: sink.server.connections == 0 and sink.hub.clients == 0)
    wait_for(lambda: threading.active_count() <= before)
    counts = sink.server.counts()
    assert counts["accepted"] == 230 and counts["refused"] == 0 and counts["errors"] == 0
    assert counts["hung_up"] == 30  # each viewer that left was noticed and released


def test_a_stream_client_that_keeps_sending_is_dropped(sink):
    with connect(sink.port) as conn:
        conn.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
        wait_for(lambda: sink.hub.clients == 1)
        try:
            for _ in range(40):
                conn.sendall(b"x" * 4096)  # 160 KiB after the request
        except OSError:
            pass  # reset once over the limit
        wait_for(lambda: sink.hub.clients == 0 and sink.server.connections == 0)
    assert sink.server.counts()["bad_requests"] == 1
