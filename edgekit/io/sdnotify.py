"""A tiny ``sd_notify`` (the systemd readiness/watchdog protocol), standalone and stdlib-only.

``edgekit.service`` is ``Type=notify`` with ``WatchdogSec=``: systemd waits for ``READY=1``
and kills/restarts the app when ``WATCHDOG=1`` stops arriving. Wire it into the app by adding
a :class:`WatchdogSink` to the loop's sinks when ``NOTIFY_SOCKET`` is set::

    sinks.append(WatchdogSink())   # a no-op outside systemd

The sink pings on every frame result (rate-limited to a quarter of the watchdog period), so a
stalled camera or a hung interpreter stops the pings and systemd restarts the service. Outside
systemd (no ``NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping


def notify(state: str, *, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to ``$NOTIFY_SOCKET``. Returns ``False`` when not
    running under systemd. Abstract sockets (``@name``) are supported."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address[0] == "@":
        address = "\0" + address[1:]
    elif address[0] != "/":
        return False  # vsock and other families are not used on these boards
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall(state.encode())
    return True


def watchdog_interval(*, environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog period in seconds from ``$WATCHDOG_USEC`` (``None`` when off or when
    ``$WATCHDOG_PID`` names another process)."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


class WatchdogSink:
    """A loop sink that reports liveness: ``READY=1`` at the first result, then ``WATCHDOG=1``
    at most every ``interval/4`` seconds; ``STOPPING=1`` on close (every call: systemd
    ignores repeats)."""

    name = "systemd watchdog"
    wants_image = False
    stop_requested = False

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._env = dict(os.environ if environ is None else environ)
        self._clock = clock
        interval = watchdog_interval(environ=self._env)
        self._period = interval / 4 if interval else None
        self._ready = False
        self._last = float("-inf")
        self.sent: list[str] = []

    def _send(self, state: str) -> None:
        if notify(state, environ=self._env):
            self.sent.append(state)

    def write(self, result: object, image: object = None) -> None:
        now = self._clock()
        if not self._ready:
            self._ready = True
            self._last = now
            self._send("READY=1\nSTATUS=processing frames")
            return
        if self._period is not None and now - self._last >= self._period:
            self._last = now
            self._send("WATCHDOG=1")

    def close(self) -> None:
        self._send("STOPPING=1")
