"""Push a bundle to boards and restart the service.

One board: ``scp`` then one ``ssh`` that checks the upload's sha256, unpacks, runs
``install.sh`` and restarts ``edgekit.service`` (every exit code checked). Several boards, or an
inventory: a generated Ansible playbook + inventory run by ``ansible-playbook`` (no home-made
orchestrator). ``dry_run`` prints/writes everything and runs nothing.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from edgekit.deploy.bundle import verify_bundle
from edgekit.deploy.render import UNIT_NAME
from edgekit.errors import DependencyMissing, DeployError, UsageError

log = logging.getLogger(__name__)

MODES = ("auto", "ssh", "ansible")
SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=15")
REMOTE_UNPACK = "/opt/edgekit/bundle"
_HOST = re.compile(r"^(?:[A-Za-z0-9_.-]+@)?(?:[A-Za-z0-9_.:-]+|\[[0-9A-Fa-f:.]+\])$")

Runner = Callable[..., subprocess.CompletedProcess]


@dataclass(frozen=True)
class FleetConfig:
    """Where and how to deploy: hosts and/or an inventory, the bundle, the SSH user."""

    bundle: Path
    hosts: tuple[str, ...] = ()
    inventory: Path | None = None
    user: str | None = None
    mode: str = "auto"
    dry_run: bool = False
    workdir: Path | None = None


@dataclass(frozen=True)
class DeployResult:
    """The commands run (or, with ``dry_run``, that would run) and generated files."""

    mode: str
    commands: tuple[tuple[str, ...], ...]
    files: tuple[Path, ...] = ()


def _check_host(host: str) -> str:
    if not _HOST.match(host) or host.startswith("-"):
        raise UsageError(f"not a valid host name: {host!r}")
    return host


def ssh_commands(host: str, bundle: Path, digest: str, user: str | None) -> list[list[str]]:
    """The ``scp`` and ``ssh`` command lines that install ``bundle`` on ``host``."""
    target = f"{user}@{host}" if user and "@" not in host else host
    remote = f"/tmp/edgekit-bundle-{digest[:12]}.tar.gz"
    script = "; ".join(
        [
            "set -eu",
            f"echo {shlex.quote(digest + '  ' + remote)} | sha256sum --check --quiet --strict",
            f"sudo -n rm -rf {REMOTE_UNPACK}",
            f"sudo -n mkdir -p {REMOTE_UNPACK}",
            f"sudo -n tar -xzf {remote} -C {REMOTE_UNPACK} --no-same-owner",
            f"sudo -n sh {REMOTE_UNPACK}/install.sh",
            f"sudo -n systemctl restart {UNIT_NAME}",
            f"rm -f {remote}",
            f"systemctl is-active {UNIT_NAME}",
        ]
    )
    return [
        ["scp", "-q", *SSH_OPTIONS, "--", str(bundle), f"{target}:{remote}"],
        ["ssh", *SSH_OPTIONS, "--", target, f"sh -c {shlex.quote(script)}"],
    ]


def playbook(bundle: Path, digest: str) -> list[dict]:
    """The Ansible playbook (as data) that installs ``bundle`` on every inventory host."""
    upload = "/var/tmp/edgekit-bundle.tar.gz"
    return [
        {
            "name": "Deploy an edgekit bundle",
            "hosts": "all",
            "become": True,
            "gather_facts": False,
            "vars": {"edgekit_bundle": str(bundle.resolve()), "edgekit_sha256": digest},
            "tasks": [
                {
                    "name": "Upload the bundle",
                    "ansible.builtin.copy": {
                        "src": "{{ edgekit_bundle }}",
                        "dest": upload,
                        "mode": "0600",
                    },
                },
                {
                    "name": "Check the upload's sha256",
                    "ansible.builtin.stat": {"path": upload, "checksum_algorithm": "sha256"},
                    "register": "edgekit_upload",
                },
                {
                    "name": "Refuse a corrupted upload",
                    "ansible.builtin.assert": {
                        "that": ["edgekit_upload.stat.checksum == edgekit_sha256"],
                        "fail_msg": "uploaded bundle does not match its sha256",
                    },
                },
                {
                    "name": "Clear the unpack folder",
                    "ansible.builtin.file": {"path": REMOTE_UNPACK, "state": "absent"},
                },
                {
                    "name": "Create the unpack folder",
                    "ansible.builtin.file": {
                        "path": REMOTE_UNPACK,
                        "state": "directory",
                        "mode": "0755",
                    },
                },
                {
                    "name": "Unpack the bundle",
                    "ansible.builtin.unarchive": {
                        "src": upload,
                        "dest": REMOTE_UNPACK,
                        "remote_src": True,
                    },
                },
                {
                    "name": "Run install.sh (idempotent)",
                    "ansible.builtin.command": {"cmd": "sh install.sh", "chdir": REMOTE_UNPACK},
                    "register": "edgekit_install",
                    "changed_when": "'nothing changed' not in edgekit_install.stdout",
                },
                {
                    "name": "Restart edgekit.service",
                    "ansible.builtin.systemd": {
                        "name": UNIT_NAME,
                        "state": "restarted",
                        "enabled": True,
                    },
                },
            ],
        }
    ]


def write_ansible_files(cfg: FleetConfig, digest: str, folder: Path) -> tuple[Path, Path]:
    """Write ``playbook.yml`` and (unless ``cfg.inventory``) ``inventory.yml`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    book = folder / "playbook.yml"
    book.write_text(
        "# Generated by `edgekit deploy`.\n"
        + yaml.safe_dump(playbook(cfg.bundle, digest), sort_keys=False),
        encoding="utf-8",
    )
    if cfg.inventory is not None:
        return book, cfg.inventory
    hosts = {h: {} for h in cfg.hosts}
    group: dict = {"hosts": hosts}
    if cfg.user:
        group["vars"] = {"ansible_user": cfg.user}
    inv = folder / "inventory.yml"
    inv.write_text(yaml.safe_dump({"all": {"children": {"edgekit": group}}}, sort_keys=False))
    return book, inv


def _run(cmd: Sequence[str], run: Runner, what: str) -> subprocess.CompletedProcess:
    log.info("running: %s", shlex.join(cmd))
    try:
        proc = run(list(cmd), capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise DependencyMissing(f"{cmd[0]} not found on PATH ({what})") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()
        raise DeployError(
            f"{what}: `{cmd[0]}` failed (exit {proc.returncode})"
            + (f": {tail[-1]}" if tail else "")
        )
    return proc


def deploy(cfg: FleetConfig, *, run: Runner = subprocess.run) -> DeployResult:
    """Deploy ``cfg.bundle`` (verified first) by SSH or Ansible; see the module docstring."""
    if cfg.mode not in MODES:
        raise UsageError(f"mode must be one of {', '.join(MODES)}, got {cfg.mode!r}")
    hosts = tuple(_check_host(h) for h in cfg.hosts)
    if not hosts and cfg.inventory is None:
        raise UsageError("give at least one HOST or --inventory")
    verify_bundle(cfg.bundle)
    digest = hashlib.sha256(cfg.bundle.read_bytes()).hexdigest()
    mode = cfg.mode
    if mode == "auto":
        mode = "ansible" if cfg.inventory is not None or len(hosts) > 1 else "ssh"
    if mode == "ssh":
        if cfg.inventory is not None:
            raise UsageError("--inventory needs the Ansible route")
        commands = [c for h in hosts for c in ssh_commands(h, cfg.bundle, digest, cfg.user)]
        if not cfg.dry_run:
            for host in hosts:
                for cmd in ssh_commands(host, cfg.bundle, digest, cfg.user):
                    _run(cmd, run, host)
        return DeployResult("ssh", tuple(tuple(c) for c in commands))
    folder = Path(cfg.workdir or tempfile.mkdtemp(prefix="edgekit-deploy-"))
    book, inv = write_ansible_files(cfg, digest, folder)
    cmd = ["ansible-playbook", "-i", str(inv), str(book)]
    if cfg.inventory is not None and hosts:
        cmd += ["--limit", ",".join(hosts)]
    if cfg.user and cfg.inventory is not None:
        cmd += ["--user", cfg.user]
    if not cfg.dry_run:
        if shutil.which("ansible-playbook") is None and run is subprocess.run:
            raise DependencyMissing(
                "ansible-playbook not found", hint="pip install 'edgekit[deploy]' (ansible-core)"
            )
        _run(cmd, run, "ansible-playbook")
    return DeployResult("ansible", (tuple(cmd),), (book, inv))
