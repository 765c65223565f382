"""``edgekit deploy``: the SSH route with fake ssh/scp on PATH recording their arguments, and
the Ansible route checked with ``ansible-playbook --syntax-check`` (and a fake to run it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgekit.deploy.bundle import build_bundle
from edgekit.deploy.config import DeployConfig
from edgekit.deploy.fleet import FleetConfig, deploy, playbook, write_ansible_files
from edgekit.errors import DeployError, UsageError

FAKE = """#!{python}
import json, os, sys
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\\n")
fail = os.environ.get("FAKE_FAIL", "")
sys.exit(3 if fail and fail == os.path.basename(sys.argv[0]) else 0)
"""


@pytest.fixture
def bundle(tmp_path, fake_model) -> Path:
    path = tmp_path / "b.tar.gz"
    build_bundle(DeployConfig(models=(str(fake_model),)), path)
    return path


@pytest.fixture
def fake_bin(tmp_path, monkeypatch) -> Path:
    """ssh, scp and ansible-playbook stand-ins that log their argv as JSON lines."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("ssh", "scp", "ansible-playbook"):
        exe = folder / name
        exe.write_text(FAKE.format(python=sys.executable))
        exe.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    return log


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_ssh_route_runs_scp_then_ssh_with_checks(bundle, fake_bin):
    result = deploy(FleetConfig(bundle=bundle, hosts=("cam1.local",), user="pi"))
    calls = _calls(fake_bin)
    assert result.mode == "ssh" and [c[0] for c in calls] == ["scp", "ssh"]
    scp, ssh = calls
    assert "BatchMode=yes" in scp and scp[-2:][0] == str(bundle)
    assert scp[-1].startswith("pi@cam1.local:/tmp/edgekit-bundle-") and "--" in scp
    assert ssh[ssh.index("--") + 1] == "pi@cam1.local"
    remote = ssh[-1]
    for step in ("sha256sum --check", "install.sh", "systemctl restart edgekit.service", "set -eu"):
        assert step in remote
    # the remote command is one shell word the remote sh can parse
    assert subprocess.run(["sh", "-n", "-c", remote]).returncode == 0


def test_ssh_failure_names_the_host_and_stops(bundle, fake_bin, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "scp")
    with pytest.raises(DeployError, match=r"cam1: `scp` failed \(exit 3\)"):
        deploy(FleetConfig(bundle=bundle, hosts=("cam1",), mode="ssh"))
    assert [c[0] for c in _calls(fake_bin)] == ["scp"]  # ssh never ran


def test_dry_run_runs_nothing(bundle, fake_bin):
    result = deploy(FleetConfig(bundle=bundle, hosts=("cam1",), dry_run=True))
    assert _calls(fake_bin) == [] and len(result.commands) == 2


def test_hosts_cannot_inject_options(bundle, fake_bin):
    for host in ("-oProxyCommand=touch /tmp/x", "cam1;reboot", "a b"):
        with pytest.raises(UsageError, match="not a valid host"):
            deploy(FleetConfig(bundle=bundle, hosts=(host,)))
    assert _calls(fake_bin) == []


def test_tampered_bundle_is_not_deployed(bundle, fake_bin, tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bundle.read_bytes()[:-40])
    with pytest.raises(DeployError):
        deploy(FleetConfig(bundle=bad, hosts=("cam1",)))
    assert _calls(fake_bin) == []


def test_fleet_uses_ansible_with_generated_inventory(bundle, fake_bin, tmp_path):
    work = tmp_path / "work"
    result = deploy(FleetConfig(bundle=bundle, hosts=("cam1", "cam2"), user="pi", workdir=work))
    assert result.mode == "ansible"
    (call,) = _calls(fake_bin)
    assert call[:3] == ["ansible-playbook", "-i", str(work / "inventory.yml")]
    inv = yaml.safe_load((work / "inventory.yml").read_text())
    group = inv["all"]["children"]["edgekit"]
    assert list(group["hosts"]) == ["cam1", "cam2"] and group["vars"] == {"ansible_user": "pi"}
    book = yaml.safe_load((work / "playbook.yml").read_text())
    assert book[0]["vars"]["edgekit_bundle"] == str(bundle.resolve())
    modules = [next(k for k in t if k.startswith("ansible.builtin.")) for t in book[0]["tasks"]]
    assert modules[0] == "ansible.builtin.copy" and modules[-1] == "ansible.builtin.systemd"


def test_inventory_and_limit(bundle, fake_bin, tmp_path):
    inv = tmp_path / "fleet.ini"
    inv.write_text("[edgekit]\ncam1\ncam2\n")
    deploy(FleetConfig(bundle=bundle, hosts=("cam2",), inventory=inv, workdir=tmp_path / "w"))
    (call,) = _calls(fake_bin)
    assert call[1:3] == ["-i", str(inv)] and call[-2:] == ["--limit", "cam2"]


def test_generated_playbook_passes_ansible_syntax_check(bundle, tmp_path):
    exe = shutil.which("ansible-playbook") or str(Path(sys.executable).parent / "ansible-playbook")
    if not Path(exe).exists():
        pytest.skip("ansible-core not installed (pip install 'edgekit[deploy]')")
    cfg = FleetConfig(bundle=bundle, hosts=("cam1", "cam2"), user="pi")
    book, inv = write_ansible_files(cfg, "0" * 64, tmp_path / "a")
    env = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [exe, "--syntax-check", "-i", str(inv), str(book)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the check can fail: an unknown module is a syntax error
    broken = playbook(bundle, "0" * 64)
    broken[0]["tasks"].append({"name": "bad", "ansible.builtin.no_such_module": {}})
    (tmp_path / "bad.yml").write_text(yaml.safe_dump(broken))
    proc = subprocess.run(
        [exe, "--syntax-check", "-i", str(inv), str(tmp_path / "bad.yml")],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert proc.returncode != 0


def test_cli_deploy_dry_run(bundle, fake_bin, capsys):
    from edgekit.cli.main import main

    assert main(["deploy", "pi@cam1", "--bundle", str(bundle), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("would run: ") == 2 and "scp" in out and _calls(fake_bin) == []
    assert main(["deploy", "--bundle", str(bundle)]) == UsageError.exit_code
