"""Flashing: real disk images (sfdisk + mkfs.vfat), first-boot files injected with mtools and
read back with mtools' mtype, write + read-back verification, and every refusal."""

from __future__ import annotations

import hashlib
import logging
import lzma
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

from edgekit.deploy.config import DeployConfig
from edgekit.deploy.flash import (
    CMDLINE_HOOK,
    FirstBoot,
    FlashConfig,
    WifiConfig,
    check_target,
    flash,
    wpa_psk,
)
from edgekit.deploy.image import FatPartition, find_boot_partition, read_partitions
from edgekit.errors import DeployError, UnsafeTargetError, UsageError

MiB = 1 << 20
FAT_START = 2048  # sectors, as built by conftest.build_disk_image
PSK = "correct horse battery staple"
SSID = "Edge Lab"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests user@host"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_wpa_psk_matches_the_ieee_802_11i_test_vector():
    # IEEE 802.11i-2004 Annex H.4.2: "password" / "IEEE"
    assert wpa_psk("password", "IEEE") == (
        "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
    )
    with pytest.raises(UsageError):
        wpa_psk("short", "IEEE")


def test_partition_tables_are_parsed_mbr_and_gpt(tmp_path, fat_read, build_image):
    for table in ("dos", "gpt"):
        img = build_image(tmp_path / f"{table}.img", table=table, files={"a.txt": b"x"})
        parts = read_partitions(img)
        assert [p.index for p in parts] == [1, 2]
        assert parts[0].offset == FAT_START * 512 and parts[0].fs == "fat32"
        assert parts[1].fs is None
        boot = find_boot_partition(img)
        assert boot.index == 1
        if table == "dos":
            assert parts[0].type == "0x0c" and parts[1].type == "0x83"
        else:
            assert parts[0].type == "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"
        fat = FatPartition(img, boot.offset)
        fat.write("new.txt", b"hello " + table.encode())
        assert fat.list() == ["a.txt", "new.txt"] and fat.read("a.txt") == b"x"
        assert fat_read(img, "new.txt") == b"hello " + table.encode()


def test_not_a_disk_image_is_refused(tmp_path):
    bad = tmp_path / "bad.img"
    bad.write_bytes(bytes(4096))
    with pytest.raises(DeployError, match="no partition table"):
        read_partitions(bad)


def _flash(image: Path, target: Path, fb: FirstBoot | None, **kw) -> object:
    cfg = FlashConfig(image=image, device=target, first_boot=fb, yes=True, **kw.pop("cfg", {}))
    return flash(cfg, **kw)


def test_flash_cloud_init_image_to_file_and_read_back(
    pi_cloudinit_image, tmp_path, fake_model, fat_read
):
    from edgekit.deploy.bundle import build_bundle

    bundle = tmp_path / "b.tar.gz"
    build_bundle(DeployConfig(models=(str(fake_model),)), bundle)
    before = _sha(pi_cloudinit_image)
    wifi = WifiConfig.create(SSID, PSK, "GB")
    fb = FirstBoot(hostname="cam1", ssh_keys=(KEY,), wifi=wifi, bundle=bundle)
    target = tmp_path / "sdcard.img"
    result = _flash(pi_cloudinit_image, target, fb)
    assert result.route == "cloud-init"
    assert _sha(pi_cloudinit_image) == before  # the source image is never modified
    assert result.sha256 == _sha(target)
    assert target.stat().st_size == pi_cloudinit_image.stat().st_size
    assert b"ROOTFS-MARKER" in target.read_bytes()

    user_data = fat_read(target, "user-data").decode()
    assert user_data.startswith("#cloud-config\n")
    doc = yaml.safe_load(user_data)
    assert doc["hostname"] == "cam1"
    assert doc["users"][0]["ssh_authorized_keys"] == [KEY]
    assert ["sh", "/boot/firmware/edgekit-firstboot.sh"] in doc["runcmd"]
    net = yaml.safe_load(fat_read(target, "network-config"))
    ap = net["network"]["wifis"]["wlan0"]["access-points"][SSID]
    assert ap["password"] == wpa_psk(PSK, SSID)
    assert net["network"]["wifis"]["wlan0"]["regulatory-domain"] == "GB"
    meta = yaml.safe_load(fat_read(target, "meta-data"))
    assert meta["local-hostname"] == "cam1" and meta["instance-id"].startswith("edgekit-")
    assert fat_read(target, "edgekit-bundle.tar.gz") == bundle.read_bytes()
    assert b"install.sh" in fat_read(target, "edgekit-firstboot.sh")
    assert b"camera_auto_detect=1" in fat_read(target, "config.txt")
    assert b"dtparam=audio=on" in fat_read(target, "config.txt")


def test_flash_firstrun_route_hooks_cmdline(pi_image, tmp_path, fat_read):
    fb = FirstBoot(hostname="cam2", ssh_keys=(KEY,), wifi=WifiConfig.create(SSID, PSK, "US"))
    target = tmp_path / "sd.img"
    result = _flash(pi_image, target, fb)
    assert result.route == "firstrun"
    cmdline = fat_read(target, "cmdline.txt").decode()
    assert cmdline.count("\n") == 1 and cmdline.rstrip().endswith(CMDLINE_HOOK)
    assert "rootwait " + CMDLINE_HOOK in cmdline
    firstrun = fat_read(target, "firstrun.sh").decode()
    assert firstrun.startswith("#!/bin/sh") and "cam2" in firstrun and KEY in firstrun
    assert wpa_psk(PSK, SSID) in firstrun
    assert fat_read(target, "ssh") == b""
    # flashing the result again does not add a second hook
    again = tmp_path / "sd2.img"
    _flash(target, again, fb)
    assert fat_read(again, "cmdline.txt").decode().count("systemd.run=") == 1


@pytest.mark.parametrize("kind", ["xz", "zip"])
def test_compressed_images_are_streamed(pi_image, tmp_path, kind, fat_read):
    if kind == "xz":
        src = tmp_path / "raspios.img.xz"
        with open(pi_image, "rb") as fin, lzma.open(src, "wb", preset=0) as fout:
            shutil.copyfileobj(fin, fout)
    else:
        src = tmp_path / "raspios.zip"
        with zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(pi_image, "2025-11-raspios-lite.img")
    target = tmp_path / "sd.img"
    result = _flash(src, target, FirstBoot(hostname="cam3"))
    assert result.size == pi_image.stat().st_size
    assert b"cam3" in fat_read(target, "firstrun.sh")
    assert fat_read(target, "config.txt").startswith(b"# For more options")


def test_flipped_byte_is_caught_by_read_back(pi_image, tmp_path):
    def flip(device: Path) -> None:
        with open(device, "r+b") as f:
            f.seek(3 * MiB + 17)
            b = f.read(1)
            f.seek(3 * MiB + 17)
            f.write(bytes([b[0] ^ 0x40]))

    with pytest.raises(DeployError, match=f"verification failed.*byte {3 * MiB + 17}"):
        _flash(pi_image, tmp_path / "sd.img", None, fault_hook=flip)
    # and without the fault the same flash verifies
    _flash(pi_image, tmp_path / "sd-ok.img", None, fault_hook=lambda d: None)


def test_secrets_never_reach_logs_or_output(
    pi_cloudinit_image, tmp_path, caplog, capsys, fake_model, fat_read
):
    from edgekit.cli.main import main

    psk_file = tmp_path / "psk"
    psk_file.write_text(PSK + "\n")
    key = tmp_path / "id.pub"
    key.write_text(KEY + "\n")
    bundle = tmp_path / "b.tar.gz"
    assert main(["bundle", "--model", str(fake_model), "--out", str(bundle)]) == 0
    bundle_before = bundle.read_bytes()
    target = tmp_path / "sd.img"
    caplog.set_level(logging.DEBUG)
    argv = [
        "flash", str(pi_cloudinit_image), "--device", str(target), "--bundle", str(bundle),
        "--wifi", SSID, "--wifi-psk-file", str(psk_file), "--wifi-country", "GB",
        "--ssh-key", str(key), "--hostname", "cam9", "--yes",
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr()
    hashed = wpa_psk(PSK, SSID)
    seen = out.out + out.err + caplog.text + repr(WifiConfig.create(SSID, PSK, "GB"))
    assert "wrote and verified" in out.out
    for secret in (PSK, hashed):
        assert secret not in seen
        assert secret.encode() not in bundle.read_bytes()
    assert bundle.read_bytes() == bundle_before  # flashing never rewrites the bundle
    # the passphrase is nowhere in the card; the derived key only in network-config
    data = target.read_bytes()
    assert PSK.encode() not in data
    assert data.count(hashed.encode()) == 1
    assert hashed.encode() in fat_read(target, "network-config")


# --- refusals -------------------------------------------------------------------------


def _card(fake_sys, tmp_path, *, size=64 * MiB, removable=True, major=8):
    fake_sys.add_disk("sdz", major, size=size, removable=removable)
    card = tmp_path / "card.dev"
    card.write_bytes(b"")
    fake_sys.attach(card, major, 0)
    return card


def test_removable_card_of_the_right_size_is_flashed(pi_image, tmp_path, fake_sys):
    card = _card(fake_sys, tmp_path)
    card.write_bytes(bytes(64 * MiB))
    bd = check_target(card, fake_sys.info())
    assert bd.is_block and bd.name == "sdz" and bd.removable and bd.partitions == ("sdz1", "sdz2")
    result = _flash(pi_image, card, None, info=fake_sys.info())
    assert result.size == pi_image.stat().st_size
    assert card.stat().st_size == 64 * MiB  # a device is written in place, not truncated


def test_refuses_mounted_partition(pi_image, tmp_path, fake_sys):
    card = _card(fake_sys, tmp_path)
    fake_sys.mount("8:1", "/dev/sdz1", "/media/user/bootfs")
    with pytest.raises(UnsafeTargetError, match=r"/dev/sdz1 is mounted on /media/user/bootfs"):
        _flash(pi_image, card, None, info=fake_sys.info())
    assert card.read_bytes() == b""


def test_refuses_mounted_by_source_path_only(tmp_path, fake_sys):
    card = _card(fake_sys, tmp_path)
    (fake_sys.root / "proc" / "self" / "mountinfo").write_text("")  # only /proc/mounts
    (fake_sys.root / "proc" / "mounts").write_text("/dev/sdz2 /mnt ext4 rw 0 0\n")
    with pytest.raises(UnsafeTargetError, match="mounted on /mnt"):
        check_target(card, fake_sys.info())


def test_refuses_the_disk_holding_root(tmp_path, fake_sys):
    disk = tmp_path / "nvme.dev"
    disk.write_bytes(b"")
    fake_sys.attach(disk, 259, 0)
    (fake_sys.root / "proc" / "mounts").write_text("")
    lines = [ln for ln in fake_sys.mountinfo if " / / " in ln]  # keep only / itself
    (fake_sys.root / "proc" / "self" / "mountinfo").write_text("\n".join(lines) + "\n")
    with pytest.raises(UnsafeTargetError, match="is mounted on /"):
        check_target(disk, fake_sys.info(), force=True)
    # root identified through major:minor even when its mount source is an alias
    (fake_sys.root / "proc" / "self" / "mountinfo").write_text(
        "20 1 259:2 / / rw - ext4 /dev/root rw\n"
    )
    assert fake_sys.info().root_disks() == {"nvme0n1"}


def test_refuses_root_disk_behind_device_mapper(tmp_path, fake_sys):
    # / on dm-0 (LUKS/LVM) whose slave is sdy2: the disk sdy holds /
    fake_sys.add_disk("sdy", 65, size=64 * MiB, removable=True)
    dm = fake_sys._node("virtual/block/dm-0", "254:0", 1000)
    (dm / "slaves").mkdir()
    part = fake_sys.root / "sys" / "devices" / "virtual" / "block" / "sdy" / "sdy2"
    (dm / "slaves" / "sdy2").symlink_to(part)
    (part / "holders").mkdir()
    (part / "holders" / "dm-0").symlink_to(dm)
    (fake_sys.root / "proc" / "self" / "mountinfo").write_text(
        "20 1 254:0 / / rw - ext4 /dev/mapper/root rw\n"
    )
    (fake_sys.root / "proc" / "mounts").write_text("")
    assert fake_sys.info().root_disks() == {"sdy"}
    disk = tmp_path / "sdy.dev"
    disk.write_bytes(b"")
    fake_sys.attach(disk, 65, 0)
    info = fake_sys.info()
    # the mount check sees / through the holder (dm-0) of partition sdy2 ...
    with pytest.raises(UnsafeTargetError, match="/dev/mapper/root is mounted on /;"):
        check_target(disk, info)

    # ... and the root-disk check refuses on its own, even with the mount list hidden
    class RootCheckOnly:
        describe = staticmethod(info.describe)
        root_disks = staticmethod(info.root_disks)

        @staticmethod
        def mounts():
            return []

    with pytest.raises(UnsafeTargetError, match="holds the running system's root filesystem"):
        check_target(disk, RootCheckOnly())


def test_refuses_non_removable_unless_forced(pi_image, tmp_path, fake_sys):
    card = _card(fake_sys, tmp_path, removable=False)
    card.write_bytes(bytes(64 * MiB))
    with pytest.raises(UnsafeTargetError, match=r"not a removable disk.*--force"):
        _flash(pi_image, card, None, info=fake_sys.info())
    result = _flash(pi_image, card, None, info=fake_sys.info(), cfg={"force": True})
    assert result.sha256 == hashlib.sha256(card.read_bytes()[: result.size]).hexdigest()


def test_refuses_target_smaller_than_image(pi_image, tmp_path, fake_sys):
    card = _card(fake_sys, tmp_path, size=16 * MiB)
    with pytest.raises(UnsafeTargetError, match=r"too small \(16777216 B\)"):
        _flash(pi_image, card, None, info=fake_sys.info(), cfg={"force": True})
    assert card.read_bytes() == b""


def test_refuses_a_partition_and_the_source_itself(pi_image, tmp_path, fake_sys):
    _card(fake_sys, tmp_path)
    part = tmp_path / "sdz1.dev"
    part.write_bytes(b"")
    fake_sys.attach(part, 8, 1)
    with pytest.raises(UnsafeTargetError, match="is partition sdz1 of /dev/sdz"):
        check_target(part, fake_sys.info())
    with pytest.raises(UnsafeTargetError, match="source image itself"):
        _flash(pi_image, pi_image, None)


def test_asks_for_confirmation_unless_yes(pi_image, tmp_path):
    target = tmp_path / "sd.img"
    asked = []
    cfg = FlashConfig(image=pi_image, device=target)
    with pytest.raises(DeployError, match="not confirmed"):
        flash(cfg, confirm=lambda q: asked.append(q) or False)
    assert asked and "Erase" in asked[0] and not target.exists()
    flash(cfg, confirm=lambda q: True)
    assert target.exists()


def test_cli_flash_refusal_is_one_line(pi_image, tmp_path, capsys):
    from edgekit.cli.main import main

    code = main(["flash", str(pi_image), "--device", str(pi_image), "--yes", "--no-provision"])
    err = capsys.readouterr().err
    assert code == UnsafeTargetError.exit_code
    assert err.count("\n") == 1 and err.startswith("edgekit: error:")


def test_first_boot_scripts_parse_with_hostile_values(tmp_path):
    import subprocess

    from edgekit.deploy.render import render

    cfg = DeployConfig(hostname="cam-1")
    ssid = 'O\'Brien "Lab" $(reboot) `id`'
    wifi = WifiConfig.create(ssid, PSK, "GB")
    ctx = {"hostname": "cam-1", "ssh_keys": (KEY,), "wifi": wifi, "bundle": tmp_path}
    for template in ("raspberrypi/firstrun.sh.j2", "raspberrypi/edgekit-firstboot.sh.j2"):
        script = tmp_path / "s.sh"
        script.write_text(render(template, cfg, **ctx))
        for shell in ("sh", "bash"):
            proc = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
            assert proc.returncode == 0, (template, proc.stderr)
    firstrun = render("raspberrypi/firstrun.sh.j2", cfg, **ctx)
    assert "set_wlan 'O'\"'\"'Brien \"Lab\" $(reboot) `id`'" in firstrun
    net = yaml.safe_load(render("raspberrypi/network-config.j2", cfg, **ctx))
    assert list(net["network"]["wifis"]["wlan0"]["access-points"]) == [ssid]
    with pytest.raises(UsageError, match="SSID"):
        WifiConfig.create("bad\nssid", PSK, "GB")


def test_first_boot_installs_the_bundle_from_the_card(
    pi_cloudinit_image, tmp_path, fake_model, fat_read
):
    """Simulate the board's first boot: take edgekit-firstboot.sh and the bundle from the
    flashed card's FAT partition and run them with the boot folder and DESTDIR in temp dirs."""
    import subprocess

    from edgekit.deploy.bundle import build_bundle

    bundle = tmp_path / "b.tar.gz"
    build_bundle(DeployConfig(board="coral-usb", models=(str(fake_model),)), bundle)
    target = tmp_path / "sd.img"
    _flash(pi_cloudinit_image, target, FirstBoot(hostname="cam5", bundle=bundle))
    boot, root = tmp_path / "boot", tmp_path / "root"
    boot.mkdir()
    root.mkdir()
    for name in ("edgekit-firstboot.sh", "edgekit-bundle.tar.gz"):
        (boot / name).write_bytes(fat_read(target, name))
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "EDGEKIT_BOOT": str(boot), "DESTDIR": str(root)}

    def boot_once() -> str:
        proc = subprocess.run(
            ["sh", str(boot / "edgekit-firstboot.sh")], env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert "bundle installed" in boot_once()
    unit = root / "etc/systemd/system/edgekit.service"
    assert "ExecStart=" in unit.read_text()
    assert (root / "etc/udev/rules.d/99-edgetpu-accelerator.rules").is_file()
    assert (root / "opt/edgekit/models/detect_int8.tflite").read_bytes() == fake_model.read_bytes()
    assert (boot / "edgekit-bundle.tar.gz.installed").is_file()
    assert "nothing to do" in boot_once()  # the next boot does nothing


def test_cli_flash_asks_and_stops_on_no(pi_image, tmp_path):
    from click.testing import CliRunner

    from edgekit.cli.deploy import flash as flash_cmd

    target = tmp_path / "sd.img"
    runner = CliRunner()
    result = runner.invoke(flash_cmd, [str(pi_image), "--device", str(target)], input="n\n")
    assert isinstance(result.exception, DeployError) and "not confirmed" in str(result.exception)
    assert "Erase" in result.output and not target.exists()
    result = runner.invoke(flash_cmd, [str(pi_image), "--device", str(target)], input="y\n")
    assert result.exit_code == 0, result.output
    assert "wrote and verified" in result.output and target.is_file()


def test_refuses_a_missing_device_node(fake_sys):
    with pytest.raises(UnsafeTargetError, match="no such device"):
        check_target(Path("/dev/sdzz-edgekit-test"), fake_sys.info())


def test_cli_flash_takes_the_board_from_the_bundle(pi_image, tmp_path, fake_model, fat_read):
    from edgekit.cli.main import main

    bundle = tmp_path / "dev.tar.gz"
    build = ["bundle", "--model", str(fake_model), "--board", "coral-devboard"]
    assert main([*build, "--out", str(bundle)]) == 0
    target = tmp_path / "sd.img"
    assert main(["flash", str(pi_image), "-d", str(target), "--bundle", str(bundle), "-y"]) == 0
    # coral-devboard has no Pi camera: config.txt is left as it was
    assert b"camera_auto_detect" not in fat_read(target, "config.txt")
    assert fat_read(target, "edgekit-bundle.tar.gz") == bundle.read_bytes()
