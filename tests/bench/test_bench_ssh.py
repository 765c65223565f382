"""edgekit.bench.ssh without a server: target specs, the ssh command line (BatchMode, host keys
checked, timeouts), how failures are named, and Ansible inventories read by ansible-inventory."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.bench.ssh import (
    SSHOptions,
    Target,
    parse_target,
    read_inventory,
    remote_word,
    resolve_targets,
    run_ssh,
    ssh_command,
    targets_from_inventory_json,
)
from edgekit.errors import RemoteError, UsageError

HAVE_ANSIBLE = bool(
    shutil.which("ansible-inventory")
    or Path(sys.executable).with_name("ansible-inventory").is_file()
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("pi@cam1.local", ("cam1.local", "pi", None)),
        ("cam1", ("cam1", None, None)),
        ("pi@10.0.0.7:2222", ("10.0.0.7", "pi", 2222)),
        ("root@[fe80::1]:22", ("fe80::1", "root", 22)),
    ],
)
def test_parse_target(spec, expected):
    t = parse_target(spec)
    assert (t.host, t.user, t.port) == expected and t.name == spec


@pytest.mark.parametrize("spec", ["-oProxyCommand=x", "pi@host;rm", "a b", "pi@host:99999", ""])
def test_bad_targets_are_refused(spec):
    with pytest.raises(UsageError):
        parse_target(spec)


def _opts(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == "-o"]


def test_ssh_command_is_batch_and_checks_host_keys():
    argv = ssh_command(Target("cam1", "cam1.local", "pi", 2222), SSHOptions(), "echo hi")
    opts = _opts(argv)
    assert argv[0] == "ssh" and argv[-3:] == ["--", "pi@cam1.local", "sh -c 'echo hi'"]
    assert "BatchMode=yes" in opts and "StrictHostKeyChecking=yes" in opts
    assert "ConnectTimeout=15" in opts and "ServerAliveInterval=15" in opts
    assert "ServerAliveCountMax=4" in opts
    assert argv[argv.index("-p") + 1] == "2222"
    assert "-i" not in argv and "-F" not in argv


def test_ssh_command_options():
    options = SSHOptions(
        known_hosts=Path("/k/known"),
        accept_new_host_keys=True,
        identity=Path("/k/id"),
        config=Path("/k/cfg"),
        connect_timeout=3,
        extra=("Compression=yes",),
    )
    argv = ssh_command(Target("a", "a"), options, "true")
    opts = _opts(argv)
    assert argv[1:3] == ["-F", "/k/cfg"]
    assert "StrictHostKeyChecking=accept-new" in opts and "ConnectTimeout=3" in opts
    assert "UserKnownHostsFile=/k/known" in opts and "Compression=yes" in opts
    assert argv[argv.index("-i") + 1] == "/k/id" and "IdentitiesOnly=yes" in opts
    # a per-target key (from an inventory) wins over the global one
    argv = ssh_command(Target("a", "a", identity=Path("/k/a")), options, "true")
    assert argv[argv.index("-i") + 1] == "/k/a"


@pytest.mark.parametrize(
    "extra",
    ["StrictHostKeyChecking=no", "batchmode=no", "-v", "NoEquals", "PermitLocalCommand=yes"],
)
def test_options_that_would_weaken_checks_are_refused(extra):
    with pytest.raises(UsageError):
        SSHOptions(extra=(extra,))


def test_remote_word_expands_home_only():
    assert remote_word("~/.cache/edgekit") == '"$HOME"/.cache/edgekit'
    assert remote_word("/opt/edgekit/venv/bin/edgekit") == "/opt/edgekit/venv/bin/edgekit"
    assert remote_word("/a b/$x") == "'/a b/$x'"
    assert subprocess.run(["sh", "-c", f"echo {remote_word('~/x')}"], capture_output=True,
                          text=True, env={"HOME": "/h"}).stdout == "/h/x\n"  # fmt: skip


def _fake_run(code: int, stderr: str = "", stdout: str = ""):
    seen = {}

    def run(argv, **kwargs):
        seen["argv"], seen["kwargs"] = argv, kwargs
        return subprocess.CompletedProcess(argv, code, stdout.encode(), stderr.encode())

    run.seen = seen
    return run


@pytest.mark.parametrize(
    ("code", "stderr", "message"),
    [
        (
            255,
            "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict "
            "checking.\nHost key verification failed.\n",
            "cam1: host key verification failed while connecting (the target is not in known_hosts",
        ),
        (
            255,
            "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\n"
            "Host key verification failed.\n",
            "cam1: host key verification failed while connecting (the target's key differs",
        ),
        (
            255,
            "pi@cam1: Permission denied (publickey).\n",
            "cam1: authentication refused while connecting: pi@cam1: Permission denied",
        ),
        (
            255,
            "ssh: connect to host cam1 port 22: Connection refused\n",
            "cam1: cannot connect while connecting: ssh: connect to host cam1 port 22",
        ),
        (
            255,
            "Connection to 10.0.0.7 closed by remote host.\n",
            "cam1: connection lost while connecting: Connection to 10.0.0.7 closed",
        ),
        (
            255,
            "Timeout, server cam1 not responding.\n",
            "cam1: connection lost while connecting: Timeout, server cam1 not responding.",
        ),
        (137, "", "cam1: the remote command was killed (signal 9) while connecting"),
        (
            3,
            "INFO: noise\nedgekit: error: m.tflite: not a TFLite model\n",
            "cam1: failed while connecting (exit 3): m.tflite: not a TFLite model",
        ),
    ],
)
def test_failures_name_the_target_and_why(code, stderr, message):
    with pytest.raises(RemoteError) as info:
        run_ssh(
            Target("cam1", "cam1"), SSHOptions(), "true", "connecting", run=_fake_run(code, stderr)
        )
    assert str(info.value).startswith(message), str(info.value)
    assert info.value.exit_code == 10


def test_stdout_comes_back_and_stdin_is_closed_by_default():
    run = _fake_run(0, stdout="{}")
    assert run_ssh(Target("a", "a"), SSHOptions(), "true", "x", run=run) == "{}"
    assert run.seen["kwargs"]["stdin"] == subprocess.DEVNULL


def test_a_timeout_is_named():
    def run(argv, **kwargs):
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"])

    with pytest.raises(RemoteError, match=r"^cam1: no answer within 5 s while copying files$"):
        run_ssh(Target("cam1", "cam1"), SSHOptions(), "true", "copying files", timeout=5, run=run)


INVENTORY_JSON = {
    "_meta": {
        "hostvars": {
            "cam1": {"ansible_host": "10.0.0.7", "ansible_user": "pi"},
            "cam2": {"ansible_port": 2222, "ansible_ssh_private_key_file": "~/.ssh/fleet"},
            "coral": {"ansible_user": "mendel"},
        }
    },
    "all": {"children": ["ungrouped", "pis", "corals"]},
    "ungrouped": {},
    "pis": {"hosts": ["cam1", "cam2"]},
    "corals": {"hosts": ["coral", "cam1"]},
}


def test_targets_from_inventory_json():
    targets = targets_from_inventory_json(INVENTORY_JSON)
    assert [(t.name, t.destination, t.port) for t in targets] == [
        ("cam1", "pi@10.0.0.7", None),
        ("cam2", "cam2", 2222),
        ("coral", "mendel@coral", None),
    ]
    assert targets[1].identity == Path("~/.ssh/fleet").expanduser()


@pytest.mark.skipif(not HAVE_ANSIBLE, reason="needs ansible-core (the deploy extra)")
@pytest.mark.parametrize("suffix", [".ini", ".yml"])
def test_read_a_deploy_inventory(tmp_path, suffix):
    path = tmp_path / f"fleet{suffix}"
    if suffix == ".ini":
        path.write_text(
            "[pis]\ncam1 ansible_host=10.0.0.7\ncam2 ansible_port=2222\n\n"
            "[pis:vars]\nansible_user=pi\n"
        )
    else:  # the layout edgekit deploy writes (write_ansible_files)
        path.write_text(
            "all:\n  children:\n    edgekit:\n      hosts:\n        cam1: {ansible_host: 10.0.0.7}\n"
            "        cam2: {ansible_port: 2222}\n      vars:\n        ansible_user: pi\n"
        )
    targets = resolve_targets([str(path), "root@bench-pc"])
    assert [(t.name, t.destination, t.port) for t in targets] == [
        ("cam1", "pi@10.0.0.7", None),
        ("cam2", "pi@cam2", 2222),
        ("root@bench-pc", "root@bench-pc", None),
    ]


def test_inventory_errors(tmp_path):
    with pytest.raises(UsageError, match="no such inventory"):
        resolve_targets([str(tmp_path / "missing.ini")])
    with pytest.raises(UsageError, match="given twice"):
        resolve_targets(["pi@a", "pi@a"])
    with pytest.raises(UsageError, match="'local' names this machine"):
        resolve_targets(["local"])

    def failing(argv, **kwargs):
        return subprocess.CompletedProcess(argv, 1, "", "ERROR! bad inventory\n")

    bad = tmp_path / "bad.ini"
    bad.write_text("[x\n")
    if HAVE_ANSIBLE:
        with pytest.raises(UsageError, match=r"ansible-inventory failed \(exit 1\): ERROR! bad"):
            read_inventory(bad, run=failing)
