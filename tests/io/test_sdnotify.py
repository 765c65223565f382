"""sd_notify over a real AF_UNIX datagram socket, as systemd provides it."""

from __future__ import annotations

import os
import socket

import pytest

from edgekit.io.sdnotify import WatchdogSink, notify, watchdog_interval


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(1)
    yield path, sock
    sock.close()


def _drain(sock) -> list[str]:
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        return out


def test_notify_sends_datagrams(notify_socket):
    path, sock = notify_socket
    assert notify("READY=1", environ={"NOTIFY_SOCKET": str(path)}) is True
    assert sock.recv(4096) == b"READY=1"
    assert notify("READY=1", environ={}) is False


def test_abstract_socket(tmp_path):
    name = f"edgekit-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        assert notify("WATCHDOG=1", environ={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(64) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_watchdog_interval_respects_pid():
    assert watchdog_interval(environ={"WATCHDOG_USEC": "30000000"}) == 30.0
    env = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert watchdog_interval(environ=env) is None
    assert watchdog_interval(environ={}) is None


def test_watchdog_sink_ready_then_rate_limited_pings(notify_socket):
    path, sock = notify_socket
    now = [100.0]
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "8000000"}  # 8 s: ping every 2 s
    sink = WatchdogSink(environ=env, clock=lambda: now[0])
    for t in (100.0, 100.5, 101.0, 102.1, 102.2, 104.2):
        now[0] = t
        sink.write(object())
    sink.close()
    assert _drain(sock) == [
        "READY=1\nSTATUS=processing frames",
        "WATCHDOG=1",
        "WATCHDOG=1",
        "STOPPING=1",
    ]


def test_watchdog_sink_is_a_no_op_outside_systemd():
    sink = WatchdogSink(environ={})
    sink.write(object())
    sink.close()
    assert sink.sent == []
