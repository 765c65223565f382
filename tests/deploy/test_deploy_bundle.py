"""Bundles: deterministic tarball, manifest, refusal of unsafe archives, install.sh run twice
in a temp root with identical trees, and ``systemd-analyze verify`` on the rendered unit."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from edgekit.deploy.bundle import (
    FIXED_MTIME,
    MANIFEST,
    BundleFile,
    build_bundle,
    bundle_files,
    unpack_bundle,
    verify_bundle,
    write_tarball,
)
from edgekit.deploy.config import DeployConfig, config_from_dict
from edgekit.deploy.render import CORAL_KEY_URL, app_command, render
from edgekit.errors import DeployError


def _cfg(model: Path, board: str = "rpi5", **kw) -> DeployConfig:
    return config_from_dict({"board": board, "model": str(model), **kw})


def test_bundle_is_deterministic_and_complete(fake_model, tmp_path):
    a, b = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    info = build_bundle(_cfg(fake_model, "coral-usb"), a)
    os.utime(fake_model, (1, 1))  # the model's mtime must not matter
    build_bundle(_cfg(fake_model, "coral-usb"), b)
    assert a.read_bytes() == b.read_bytes()
    assert info.sha256 == hashlib.sha256(a.read_bytes()).hexdigest()
    with tarfile.open(a) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert {m.mtime for m in members} == {FIXED_MTIME}
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "root", "root")}
    assert set(names) >= {
        "install.sh",
        MANIFEST,
        "edgekit.yaml",
        "models/detect_int8.tflite",
        "rootfs/etc/systemd/system/edgekit.service",
        "rootfs/etc/udev/rules.d/99-edgetpu-accelerator.rules",
        "rootfs/etc/apt/sources.list.d/coral-edgetpu.list",
        "rootfs/usr/lib/sysusers.d/edgekit.conf",
        "firmware/config-camera.txt",
    }
    assert next(m for m in members if m.name == "install.sh").mode == 0o755
    with tarfile.open(a) as tar:
        manifest = tar.extractfile(MANIFEST).read().decode().splitlines()
        listed = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in manifest}
        for name in set(names) - {MANIFEST}:
            assert listed[name] == hashlib.sha256(tar.extractfile(name).read()).hexdigest()
    assert verify_bundle(a).files.keys() == set(names)


def test_board_specifics(fake_model):
    def files(board):
        return {f.name: f.data for f in bundle_files(_cfg(fake_model, board))}

    usb = files("coral-usb")
    rules = usb["rootfs/etc/udev/rules.d/99-edgetpu-accelerator.rules"].decode()
    assert 'ATTR{idVendor}=="1a6e", ATTR{idProduct}=="089a"' in rules
    assert 'ATTR{idVendor}=="18d1", ATTR{idProduct}=="9302"' in rules
    assert rules.count('MODE="0660"') == 2 and rules.count('GROUP="plugdev"') == 2
    apt = usb["rootfs/etc/apt/sources.list.d/coral-edgetpu.list"].decode()
    assert apt.strip() == (
        "deb [signed-by=/etc/apt/keyrings/coral-edgetpu.gpg] "
        "https://packages.cloud.google.com/apt coral-edgetpu-stable main"
    )
    assert b"libedgetpu1-std" in usb["install.sh"] and b"python3-picamera2" in usb["install.sh"]
    pi = files("rpi4")
    assert not any("udev" in n or "apt" in n for n in pi)
    assert b"libedgetpu1-std" not in pi["install.sh"]
    dev = files("coral-devboard")
    unit = dev["rootfs/etc/systemd/system/edgekit.service"].decode()
    assert "DeviceAllow=/dev/apex_0 rw" in unit and "SupplementaryGroups=video apex" in unit
    assert "firmware/config-camera.txt" not in dev
    assert b"m edgekit apex" in dev["rootfs/usr/lib/sysusers.d/edgekit.conf"]
    installed = yaml.safe_load(pi["edgekit.yaml"])
    assert installed["models"] == ["detect_int8.tflite"] and installed["board"] == "rpi4"


def test_unit_content(fake_model):
    unit = render("common/edgekit.service.j2", _cfg(fake_model, "coral-usb"))
    for line in [
        "Type=notify", "WatchdogSec=30", "Restart=always", "RestartSec=2", "User=edgekit",
        "SupplementaryGroups=video plugdev", "ProtectSystem=strict", "ProtectHome=yes",
        "NoNewPrivileges=yes", "PrivateTmp=yes", "DevicePolicy=closed",
        "DeviceAllow=char-video4linux rw", "DeviceAllow=char-usb_device rw",
        "StateDirectory=edgekit", "LogsDirectory=edgekit", "StandardOutput=journal",
    ]:  # fmt: skip
        assert line in unit.splitlines(), line
    plain = render(
        "common/edgekit.service.j2",
        _cfg(fake_model, service={"watchdog_sec": 0, "output_dir": "/srv/cam"}),
    )
    assert "Type=simple" in plain and "WatchdogSec" not in plain
    assert "ReadWritePaths=/srv/cam" in plain


@pytest.mark.parametrize("policy", ["continue", "stop"])
def test_the_unit_says_what_a_lost_output_does(fake_model, policy):
    """The service command carries --on-output-error, and the run command accepts it."""
    from edgekit.cli.run import detect

    cfg = _cfg(fake_model, service={"on_output_error": policy})
    unit = render("common/edgekit.service.j2", cfg)
    (exec_line,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert f'"--on-output-error" "{policy}"' in exec_line
    assert f"--on-output-error {policy} (edgekit.yaml service.on_output_error)" in unit
    args = app_command(cfg)[2:]  # after the executable and the task
    ctx = detect.make_context("detect", args)
    assert ctx.params["on_output_error"] == policy and ctx.params["no_display"]


def _systemd_verify(unit_text: str, folder: Path) -> subprocess.CompletedProcess:
    unit = folder / "edgekit.service"
    unit.write_text(unit_text)
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        cwd=folder,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )


@pytest.mark.parametrize("board", ["rpi5", "coral-usb", "coral-devboard"])
def test_systemd_analyze_verify_passes(fake_model, tmp_path, board):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed (apt install systemd)")
    # ExecStart must name an existing executable: render with the prefix in the temp folder.
    prefix = tmp_path / "opt" / "edgekit"
    exe = prefix / "venv" / "bin" / "edgekit"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    cfg = _cfg(
        fake_model,
        board,
        install={"prefix": str(prefix)},
        service={"environment": {"EDGEKIT_LOG": "100% $HOME"}, "extra_args": ["--threads", "2"]},
    )
    assert app_command(cfg)[0] == str(exe)
    proc = _systemd_verify(render("common/edgekit.service.j2", cfg), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr  # unknown keys are only warnings: none allowed
    # the check can fail: a typo'd directive and a missing binary are reported
    broken = render("common/edgekit.service.j2", cfg).replace("Restart=always", "Restart=sometimes")
    proc = _systemd_verify(broken.replace(str(exe), "/nonexistent/edgekit"), tmp_path)
    assert proc.returncode != 0 and "sometimes" in proc.stderr


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        h.update(f"{path.relative_to(root)}|{st.st_mode:o}|{st.st_mtime_ns}|".encode())
        if path.is_file():
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def test_install_sh_is_idempotent_under_destdir(fake_model, tmp_path):
    bundle = tmp_path / "b.tar.gz"
    build_bundle(_cfg(fake_model, "coral-usb"), bundle)
    unpacked = tmp_path / "unpacked"
    unpack_bundle(bundle, unpacked)
    root = tmp_path / "root"
    root.mkdir()

    def install() -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["sh", str(unpacked / "install.sh")],
            env={"PATH": os.environ["PATH"], "DESTDIR": str(root)},
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr
        return proc

    first = install()
    assert "installed /etc/systemd/system/edgekit.service" in first.stdout
    assert "(changed: 1)" in first.stdout
    digest = _tree_digest(root)
    second = install()
    assert "installed" not in second.stdout and "(changed: 0)" in second.stdout
    assert _tree_digest(root) == digest
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert files == {
        "opt/edgekit/models/detect_int8.tflite",
        "etc/edgekit/edgekit.yaml",
        "etc/systemd/system/edgekit.service",
        "etc/udev/rules.d/99-edgetpu-accelerator.rules",
        "etc/apt/sources.list.d/coral-edgetpu.list",
        "usr/lib/sysusers.d/edgekit.conf",
    }
    assert (root / "etc/systemd/system/edgekit.service").stat().st_mode & 0o777 == 0o644
    assert not (root / "etc" / "passwd").exists()  # no user created in a DESTDIR
    # What the real root would add (issue #11): apt packages with the Edge TPU runtime from
    # Coral's repository, whose keyring is the one the laid-out list trusts, and a pip install
    # of edgekit[pi] (ai-edge-litert's load_delegate; no pycoral, no tflite-runtime).
    said = [line.removeprefix("edgekit-install: skipped: ") for line in second.stdout.splitlines()]
    assert (
        "apt-get install python3-numpy python3-picamera2 python3-libcamera python3-venv "
        "libedgetpu1-std" in said
    )
    listed = (root / "etc/apt/sources.list.d/coral-edgetpu.list").read_text()
    keyring = listed.split("signed-by=", 1)[1].split("]", 1)[0]
    assert f"Coral's apt key {keyring} from {CORAL_KEY_URL}" in said
    assert "coral-edgetpu-stable main" in listed and CORAL_KEY_URL.startswith("https://")
    pip_line = next(line for line in said if line.startswith("pip install"))
    assert pip_line.startswith("pip install edgekit[pi] into /opt/edgekit/venv")
    assert "numpy pinned to the system's" in pip_line
    assert not (root / "opt/edgekit/venv").exists()
    script = (unpacked / "install.sh").read_text()
    assert "pycoral" not in script and "tflite-runtime" not in script
    # a file changed in the tree is put back; a tampered bundle is refused
    (root / "etc/edgekit/edgekit.yaml").write_text("board: wrong\n")
    assert "installed /etc/edgekit/edgekit.yaml" in install().stdout
    (unpacked / "models" / "detect_int8.tflite").write_bytes(b"evil")
    proc = subprocess.run(
        ["sh", str(unpacked / "install.sh")], env={"PATH": os.environ["PATH"], "DESTDIR": str(root)},
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode != 0 and "MANIFEST" in proc.stderr


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]], manifest: bool = True) -> Path:
    files = [(i, d) for i, d in members]
    if manifest:
        text = "".join(
            f"{hashlib.sha256(d).hexdigest()}  {i.name}\n" for i, d in members if i.isfile()
        )
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(text)
        files.append((info, text.encode()))
    with tarfile.open(path, "w:gz") as tar:
        for info, data in files:
            if info.isfile():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([(_file("/etc/passwd"), b"x")], "absolute path"),
        ([(_file("../evil.sh"), b"x")], r"'\.\.'"),
        ([(_file("models/../../evil.sh"), b"x")], r"'\.\.'"),
        ([(_link("models/m.tflite", "/etc/shadow"), b"")], "escapes the bundle"),
        ([(_link("models/m.tflite", "../../../root/.ssh"), b"")], "escapes the bundle"),
        ([(_link("a", "install.sh", tarfile.LNKTYPE), b"")], "links are not allowed"),
    ],
)
def test_unsafe_bundles_are_refused(tmp_path, members, message):
    bad = _tar(tmp_path / "bad.tar.gz", [(_file("install.sh"), b"echo\n"), *members])
    with pytest.raises(DeployError, match=message):
        verify_bundle(bad)
    dest = tmp_path / "dest"
    with pytest.raises(DeployError, match=message):
        unpack_bundle(bad, dest)
    assert not dest.exists() or not any(dest.iterdir())
    assert not (tmp_path / "evil.sh").exists()


def test_manifest_mismatches_are_refused(tmp_path):
    ok = [(_file("install.sh"), b"echo\n"), (_file("models/m.tflite"), b"m")]
    no_manifest = _tar(tmp_path / "a.tar.gz", ok, manifest=False)
    with pytest.raises(DeployError, match="no MANIFEST"):
        verify_bundle(no_manifest)
    files = [
        BundleFile("install.sh", b"echo\n"),
        BundleFile(MANIFEST, b"0" * 64 + b"  install.sh\n"),
    ]
    write_tarball(files, tmp_path / "b.tar.gz")
    with pytest.raises(DeployError, match=r"install.sh does not match"):
        verify_bundle(tmp_path / "b.tar.gz")
    extra = [BundleFile("install.sh", b"x"), BundleFile("extra", b"y"), BundleFile(MANIFEST, (hashlib.sha256(b"x").hexdigest() + "  install.sh\n").encode())]  # fmt: skip
    write_tarball(extra, tmp_path / "c.tar.gz")
    with pytest.raises(DeployError, match=r"not listed in MANIFEST.sha256: extra"):
        verify_bundle(tmp_path / "c.tar.gz")
    good = _tar(tmp_path / "d.tar.gz", ok)
    unpack_bundle(good, tmp_path / "out")
    assert (tmp_path / "out" / "models" / "m.tflite").read_bytes() == b"m"
    with pytest.raises(DeployError, match="not empty"):
        unpack_bundle(good, tmp_path / "out")


def test_bundle_refuses_bad_models_and_names(tmp_path, fake_model):
    not_model = tmp_path / "x.tflite"
    not_model.write_bytes(b"hello world")
    with pytest.raises(DeployError, match=r"x\.tflite: not a TFLite model"):
        bundle_files(_cfg(not_model))
    with pytest.raises(DeployError, match="no model"):
        bundle_files(DeployConfig())
    cfg = replace(_cfg(fake_model), models=(str(tmp_path / "missing.tflite"),))
    with pytest.raises(DeployError, match=r"missing.tflite: cannot read"):
        bundle_files(cfg)


def test_cli_bundle_and_verify(fake_model, tmp_path, capsys):
    from edgekit.cli.main import main

    config = tmp_path / "edgekit.yaml"
    config.write_text(
        "board: coral-usb\ntask: detect\nmodel: detect_int8.tflite\n"
        "thresholds: {score: 0.4}\nservice: {watchdog_sec: 20}\n"
    )
    out = tmp_path / "b.tar.gz"
    assert main(["bundle", "--config", str(config), "--out", str(out)]) == 0
    assert "coral-usb bundle" in capsys.readouterr().out
    with tarfile.open(out) as tar:
        unit = tar.extractfile("rootfs/etc/systemd/system/edgekit.service").read().decode()
    assert "WatchdogSec=20" in unit and '"--score" "0.4"' in unit
    assert main(["bundle", "--verify", str(out)]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["bundle", "--model", str(fake_model), "--board", "rpi9", "--out", str(out)]) == 2


@pytest.mark.parametrize("board", ["rpi5", "rpi4", "coral-usb", "coral-devboard"])
def test_install_sh_parses_for_every_board(fake_model, tmp_path, board):
    files = {f.name: f.data for f in bundle_files(_cfg(fake_model, board))}
    script = tmp_path / "install.sh"
    script.write_bytes(files["install.sh"])
    for shell in ("sh", "bash"):
        proc = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    text = files["install.sh"].decode()
    assert text.startswith("#!/bin/sh") and "\nset -eu\n" in text
    assert "python3 >= 3.10" in text
    unit = files["rootfs/etc/systemd/system/edgekit.service"].decode()
    assert ("RestrictSUIDSGID=yes" in unit) == (board != "coral-devboard")


def test_bundle_with_a_real_model(shared, tmp_path):
    model = shared("models", "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite")
    out = tmp_path / "real.tar.gz"
    info = build_bundle(_cfg(model, "coral-usb"), out)
    assert verify_bundle(out).sha256 == info.sha256
    dest = tmp_path / "u"
    unpack_bundle(out, dest)
    assert (dest / "models" / model.name).read_bytes() == model.read_bytes()
