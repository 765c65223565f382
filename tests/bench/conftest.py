"""A real OpenSSH server on loopback and a second edgekit install, for ``edgekit bench --on``.

``sshd``: Debian's ``/usr/sbin/sshd`` started once per session on 127.0.0.1 and a free port,
with its own host key, user key and authorized_keys in a temp folder (``UsePAM no``, the user
running the tests), stopped at the end of the session even when tests fail. An ssh config names
two aliases of it, ``target-a`` and ``target-b``. Skips when sshd is not installed.

``target_edgekit``: this worktree installed (not editable, extra ``eval``) into its own venv, as
a board would have it: the machine measured through SSH. One venv per session (~20 s with pip's
cache warm).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Sshd:
    """The running server: its port, the client files, and the server's log."""

    port: int
    user: str
    folder: Path
    identity: Path
    known_hosts: Path
    ssh_config: Path
    host_key_pub: Path
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _sshd_exe() -> str | None:
    found = shutil.which("sshd")
    if found:
        return found
    return "/usr/sbin/sshd" if os.access("/usr/sbin/sshd", os.X_OK) else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgekit-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _wait_listening(proc: subprocess.Popen, port: int, log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited ({proc.returncode}):\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"sshd did not listen on {port} within {timeout} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    exe = _sshd_exe()
    if exe is None:
        pytest.skip("sshd not installed (apt-get install openssh-server)")
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("ssh client not installed (apt-get install openssh-client)")
    folder = tmp_path_factory.mktemp("sshd")
    host_key, user_key = folder / "host_key", folder / "user_key"
    _keygen(host_key)
    _keygen(user_key)
    (folder / "authorized_keys").write_text((folder / "user_key.pub").read_text())
    if os.geteuid() == 0:
        # sshd running as root needs its privilege separation folder (systemd makes it at boot).
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    user = getpass.getuser()
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"PidFile {folder / 'sshd.pid'}",
                f"AuthorizedKeysFile {folder / 'authorized_keys'}",
                f"AllowUsers {user}",
                "UsePAM no",
                "StrictModes no",  # the key files live in a pytest temp folder
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "PrintMotd no",
                "MaxStartups 50",
                "",
            ]
        )
    )
    log = folder / "sshd.log"
    with open(log, "wb") as log_fh:
        proc = subprocess.Popen(
            [exe, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_listening(proc, port, log)
        kind, key = (folder / "host_key.pub").read_text().split()[:2]
        known = folder / "known_hosts"
        known.write_text(f"[127.0.0.1]:{port} {kind} {key}\n")
        ssh_config = folder / "ssh_config"
        ssh_config.write_text(
            "".join(
                f"Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n"
                f"  IdentityFile {user_key}\n  IdentitiesOnly yes\n"
                f"  UserKnownHostsFile {known}\n"
                for alias in ("target-a", "target-b")
            )
        )
        yield Sshd(
            port=port,
            user=user,
            folder=folder,
            identity=user_key,
            known_hosts=known,
            ssh_config=ssh_config,
            host_key_pub=folder / "host_key.pub",
            log=log,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def target_edgekit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``edgekit`` of a second venv holding a (non-editable) install of this worktree."""
    folder = tmp_path_factory.mktemp("target")
    src = folder / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "edgekit", src / "edgekit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"{src}[eval]"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"pip install of the target venv failed:\n{proc.stderr[-3000:]}")
    exe = venv / "bin" / "edgekit"
    assert exe.is_file(), f"{exe} missing after pip install"
    return exe
