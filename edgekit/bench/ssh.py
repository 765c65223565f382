"""SSH to a measurement target through the system ``ssh`` client.

Every call is ``ssh -o BatchMode=yes -o StrictHostKeyChecking=yes ...`` (no password prompt,
and a host whose key is unknown or changed is refused unless ``accept_new_host_keys``), with a
connect timeout and keep-alives so a target that disappears is noticed within about a minute.
Files travel as a tar stream on the same connection's stdin, so targets need no SFTP server.
The command lines logged hold host names, options and paths, never key material.

Targets come from ``[user@]host[:port]`` specs or from an Ansible inventory (the one
``edgekit deploy`` uses), read with ``ansible-inventory --list``.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from edgekit.errors import DependencyMissing, RemoteError, UsageError

__all__ = [
    "SSHOptions",
    "Target",
    "parse_target",
    "read_inventory",
    "remote_word",
    "run_ssh",
    "ssh_command",
]

log = logging.getLogger(__name__)

_SPEC = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9_.][A-Za-z0-9_.-]*)@)?"
    r"(?P<host>[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?$"
)
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./+@%:=,-]+$")

Runner = Callable[..., subprocess.CompletedProcess]


@dataclass(frozen=True)
class SSHOptions:
    """How to reach every target.

    - ``known_hosts``: the known_hosts file to check host keys against (default: the user's).
    - ``accept_new_host_keys``: ``StrictHostKeyChecking=accept-new`` (trust a first key, still
      refuse a changed one) instead of ``yes``.
    - ``identity``: private key file (``-i``, with ``IdentitiesOnly``); ``config``: ``-F FILE``.
    - ``connect_timeout``/``alive_interval``/``alive_count``: seconds to connect, and keep-alive
      probes (a silent target is dropped after ``alive_interval * alive_count`` seconds).
    - ``extra``: more ``-o`` options (``Key=value``).
    """

    known_hosts: Path | None = None
    accept_new_host_keys: bool = False
    identity: Path | None = None
    config: Path | None = None
    connect_timeout: int = 15
    alive_interval: int = 15
    alive_count: int = 4
    extra: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "alive_interval", "alive_count"):
            if getattr(self, name) < 1:
                raise UsageError(f"ssh {name} must be >= 1, got {getattr(self, name)}")
        for opt in self.extra:
            key = opt.partition("=")[0].strip().lower()
            if "=" not in opt or opt.startswith("-"):
                raise UsageError(f"ssh option must be Key=value, got {opt!r}")
            if key in ("batchmode", "stricthostkeychecking", "permitlocalcommand"):
                raise UsageError(f"ssh option {opt!r} is set by edgekit and cannot be changed")


@dataclass(frozen=True)
class Target:
    """One machine to measure: ``name`` labels its column; ``host`` is what ssh connects to (an
    address or a ~/.ssh/config alias) with optional ``user``, ``port`` and key ``identity``."""

    name: str
    host: str
    user: str | None = None
    port: int | None = None
    identity: Path | None = None

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host


def parse_target(spec: str) -> Target:
    """``[user@]host[:port]`` (IPv6 as ``[addr]``) -> :class:`Target` named ``spec``."""
    m = _SPEC.match(spec.strip())
    if not m or spec.startswith("-"):
        raise UsageError(f"not a target: {spec!r}", hint="use user@host, host:port or an inventory")
    port = int(m["port"]) if m["port"] else None
    if port is not None and not 0 < port < 65536:
        raise UsageError(f"{spec!r}: port {port} out of range")
    host = m["host"]
    if host.startswith("["):
        host = host[1:-1]
    return Target(name=spec.strip(), host=host, user=m["user"], port=port)


def ssh_command(target: Target, options: SSHOptions, script: str) -> list[str]:
    """The ``ssh`` argv that runs ``script`` with ``sh -c`` on ``target``."""
    argv = ["ssh"]
    if options.config is not None:
        argv += ["-F", str(options.config)]
    strict = "accept-new" if options.accept_new_host_keys else "yes"
    for opt in (
        "BatchMode=yes",
        f"StrictHostKeyChecking={strict}",
        f"ConnectTimeout={options.connect_timeout}",
        f"ServerAliveInterval={options.alive_interval}",
        f"ServerAliveCountMax={options.alive_count}",
        "PermitLocalCommand=no",
        *options.extra,
    ):
        argv += ["-o", opt]
    if options.known_hosts is not None:
        argv += ["-o", f"UserKnownHostsFile={options.known_hosts}"]
    identity = target.identity or options.identity
    if identity is not None:
        argv += ["-i", str(identity), "-o", "IdentitiesOnly=yes"]
    if target.port is not None:
        argv += ["-p", str(target.port)]
    return [*argv, "--", target.destination, f"sh -c {shlex.quote(script)}"]


def remote_word(path: str) -> str:
    """``path`` as one word of a remote ``sh`` command: ``~/x`` becomes ``"$HOME"/x``."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def check_remote_path(path: str, what: str) -> str:
    """Refuse remote paths with characters that need quoting beyond ``remote_word``."""
    if not _SAFE_PATH.match(path.replace("~", "", 1) if path.startswith("~") else path):
        raise UsageError(f"{what} {path!r}: use letters, digits and ./_+@%:=,- only")
    return path


def _why_ssh_failed(stderr: str) -> tuple[str, str, str | None]:
    """(what went wrong, ssh's own last line, a hint) for an ssh exit status 255."""
    text = stderr.lower()
    last = next((ln.strip() for ln in reversed(stderr.splitlines()) if ln.strip()), "")
    if "host key verification failed" in text or "remote host identification has changed" in text:
        if "has changed" in text:
            hint = (
                "the target's key differs from known_hosts; if the board was reinstalled, "
                "remove the old key with `ssh-keygen -R HOST`"
            )
        else:
            hint = (
                "the target is not in known_hosts; add its key (ssh-keyscan, checked), or pass "
                "--accept-new-host-keys to trust a first key"
            )
        return "host key verification failed", "", hint
    if "permission denied" in text:
        return "authentication refused", last, "check the user and key (-i, --ssh-config)"
    if "could not resolve hostname" in text:
        return "unknown host", last, None
    if any(k in text for k in ("connection refused", "timed out", "no route to host")):
        return "cannot connect", last, None
    lost = ("closed by remote host", "broken pipe", "not responding", "connection closed")
    if any(k in text for k in (*lost, "connection reset")):
        return "connection lost", last, None
    return "ssh failed", last, None


def _remote_error_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("edgekit: error:"):
            return line[len("edgekit: error:") :].strip()
    return lines[-1] if lines else ""


def run_ssh(
    target: Target,
    options: SSHOptions,
    script: str,
    what: str,
    *,
    stdin: IO[bytes] | None = None,
    timeout: float | None = None,
    run: Runner = subprocess.run,
) -> str:
    """Run ``script`` on ``target``; its stdout. Any failure is a :class:`RemoteError` that
    names the target and ``what`` it was doing (``cam1: connection lost while running edgekit
    bench: ...``)."""
    argv = ssh_command(target, options, script)
    log.info("%s: %s: %s", target.name, what, shlex.join(argv[:-1]) + " 'sh -c ...'")
    try:
        proc = run(
            argv,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise DependencyMissing("ssh not found on PATH", hint="apt install openssh-client") from exc
    except subprocess.TimeoutExpired as exc:
        raise RemoteError(f"{target.name}: no answer within {timeout:g} s while {what}") from exc
    stderr = proc.stderr.decode("utf-8", "replace")
    code = proc.returncode
    if code == 0:
        return proc.stdout.decode("utf-8", "replace")
    if code == 255:
        why, detail, hint = _why_ssh_failed(stderr)
        raise RemoteError(
            f"{target.name}: {why} while {what}" + (f": {detail}" if detail else ""), hint=hint
        )
    if code < 0:
        raise RemoteError(f"{target.name}: ssh was stopped (signal {-code}) while {what}")
    if 128 < code < 160:
        raise RemoteError(
            f"{target.name}: the remote command was killed (signal {code - 128}) while {what}"
        )
    detail = _remote_error_line(stderr)
    raise RemoteError(
        f"{target.name}: failed while {what} (exit {code})" + (f": {detail}" if detail else "")
    )


def _ansible_inventory_exe() -> str:
    exe = shutil.which("ansible-inventory")
    if exe is None:
        beside = Path(sys.executable).with_name("ansible-inventory")
        if beside.is_file():
            exe = str(beside)
    if exe is None:
        raise DependencyMissing(
            "reading an inventory needs ansible-inventory",
            hint="pip install 'edgekit[deploy]' (ansible-core)",
        )
    return exe


def _hosts_in_order(doc: dict[str, Any], group: str, seen: list[str]) -> None:
    entry = doc.get(group) or {}
    for host in entry.get("hosts", ()):
        if host not in seen:
            seen.append(host)
    for child in entry.get("children", ()):
        _hosts_in_order(doc, child, seen)


def targets_from_inventory_json(doc: dict[str, Any]) -> list[Target]:
    """Targets from ``ansible-inventory --list`` output, in inventory order. Host variables
    ``ansible_host``, ``ansible_user``, ``ansible_port`` and ``ansible_ssh_private_key_file``
    are honoured; the host's inventory name labels its column."""
    names: list[str] = []
    _hosts_in_order(doc, "all", names)
    hostvars = (doc.get("_meta") or {}).get("hostvars") or {}
    targets = []
    for name in names:
        hv = hostvars.get(name) or {}
        host = str(hv.get("ansible_host") or name)
        port = hv.get("ansible_port")
        key = hv.get("ansible_ssh_private_key_file") or hv.get("ansible_private_key_file")
        target = parse_target(host)  # validates the address
        targets.append(
            Target(
                name=name,
                host=target.host,
                user=str(hv["ansible_user"]) if hv.get("ansible_user") else target.user,
                port=int(port) if port not in (None, "") else target.port,
                identity=Path(str(key)).expanduser() if key else None,
            )
        )
    return targets


def read_inventory(path: Path, *, run: Runner = subprocess.run) -> list[Target]:
    """Every host of an Ansible inventory (INI or YAML) as a :class:`Target`."""
    if not path.is_file():
        raise UsageError(f"{path}: no such inventory file")
    argv = [_ansible_inventory_exe(), "-i", str(path), "--list"]
    proc = run(argv, capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()
        raise UsageError(
            f"{path}: ansible-inventory failed (exit {proc.returncode})"
            + (f": {tail[-1]}" if tail else "")
        )
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: ansible-inventory printed no JSON ({exc})") from None
    targets = targets_from_inventory_json(doc)
    if not targets:
        raise UsageError(f"{path}: the inventory lists no hosts")
    return targets


def resolve_targets(specs: Sequence[str], *, run: Runner = subprocess.run) -> list[Target]:
    """``--on`` values: an existing file (or a ``.ini``/``.yml``/``.yaml`` name) is an
    inventory, anything else a ``[user@]host[:port]``. Duplicate names are refused."""
    targets: list[Target] = []
    for spec in specs:
        path = Path(spec)
        if path.is_file() or path.suffix.lower() in (".ini", ".yml", ".yaml"):
            targets += read_inventory(path, run=run)
        else:
            targets.append(parse_target(spec))
    names = [t.name for t in targets]
    if dup := sorted({n for n in names if names.count(n) > 1}):
        raise UsageError(f"target given twice: {', '.join(dup)}")
    if "local" in names:
        raise UsageError("'local' names this machine (--local); give the target another name")
    return targets
