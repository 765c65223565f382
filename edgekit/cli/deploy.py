"""``edgekit bundle | flash | deploy``: package a model for a board, write an SD card with
first-boot provisioning, push a bundle to running boards."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.deploy.config import BOARDS, load_config
from edgekit.errors import UsageError

_CTX = {"help_option_names": ["-h", "--help"]}


@click.command(context_settings=_CTX)
@click.option(
    "--model",
    "-m",
    "models",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="A .tflite model to ship (repeatable; the first is the one the service runs). Overrides 'model:' in the config.",
)
@click.option(
    "--board",
    type=click.Choice(BOARDS),
    default=None,
    help="Target board (default: the config's, else rpi5).",
)
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="edgekit.yaml: task, source, outputs, thresholds, user, service options.",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Bundle to write (e.g. edgekit-rpi5.tar.gz).",
)
@click.option(
    "--verify",
    "verify_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Check an existing bundle instead (safe paths, manifest) and exit.",
)
def bundle(
    models: tuple[Path, ...],
    board: str | None,
    config_path: Path | None,
    out: Path | None,
    verify_path: Path | None,
) -> None:
    """Package model(s) + service for a board into one deterministic .tar.gz.

    \b
    The bundle holds the model(s), edgekit.yaml, the systemd unit (hardened, watchdog), udev
    rules (Coral USB), apt sources, an idempotent install.sh and MANIFEST.sha256. On the board:
      tar -xzf B.tar.gz -C /tmp/b && sudo sh /tmp/b/install.sh
    or let `edgekit flash --bundle` / `edgekit deploy` do it.

    \b
    Examples:
      edgekit bundle --model ssd.tflite --board rpi5 --out edgekit-rpi5.tar.gz
      edgekit bundle --model ssd_edgetpu.tflite --board coral-usb -c edgekit.yaml -o b.tar.gz
      edgekit bundle --verify b.tar.gz
    """
    from edgekit.deploy.bundle import build_bundle, verify_bundle

    if verify_path is not None:
        info = verify_bundle(verify_path)
        click.echo(f"{verify_path}: OK, {len(info.files)} files, sha256 {info.sha256}")
        return
    if out is None:
        raise UsageError("give --out B.tar.gz (or --verify B.tar.gz)")
    cfg = load_config(config_path).with_overrides(
        board=board, models=tuple(str(m) for m in models) or None
    )
    info = build_bundle(cfg, out)
    click.echo(f"{out}: {cfg.board} bundle, {len(info.files)} files, sha256 {info.sha256}")


@click.command(context_settings=_CTX)
@click.argument("image", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--device",
    "-d",
    required=True,
    type=click.Path(path_type=Path),
    help="Whole disk to overwrite (/dev/sdX, /dev/mmcblkN) or an image file.",
)
@click.option(
    "--bundle",
    "bundle_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Bundle installed at first boot (copied to the boot partition).",
)
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="edgekit.yaml (board, login_user, hostname, wifi_country).",
)
@click.option("--wifi", "ssid", default=None, help="Wi-Fi network name (SSID).")
@click.option(
    "--wifi-psk-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="File whose first line is the Wi-Fi passphrase (never given on the command line).",
)
@click.option(
    "--wifi-country",
    default=None,
    help="Two-letter regulatory country (GB, US, DE): Wi-Fi stays off without it.",
)
@click.option(
    "--ssh-key",
    "ssh_keys",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Public key file for the login user (repeatable).",
)
@click.option("--hostname", default=None, help="Hostname of the board (default: the config's).")
@click.option(
    "--first-boot",
    "route",
    type=click.Choice(["auto", "cloud-init", "firstrun"]),
    default="auto",
    show_default=True,
    help="cloud-init files, or Imager's firstrun.sh (auto: cloud-init when the image has it).",
)
@click.option("--no-provision", is_flag=True, help="Write the image as is (no first-boot files).")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Where the temporary image copy goes (needs the image's size free).",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--force", is_flag=True, help="Allow a non-removable disk (some USB SD readers report so)."
)
def flash(
    image: Path,
    device: Path,
    bundle_path: Path | None,
    config_path: Path | None,
    ssid: str | None,
    wifi_psk_file: Path | None,
    wifi_country: str | None,
    ssh_keys: tuple[Path, ...],
    hostname: str | None,
    route: str,
    no_provision: bool,
    workdir: Path | None,
    yes: bool,
    force: bool,
) -> None:
    """Write an OS image (.img, .img.xz, .zip) to an SD card, with first-boot setup.

    \b
    A temporary copy of the image gets first-boot files in its FAT boot partition (hostname,
    login user with your SSH key, Wi-Fi as a pre-hashed WPA key, the bundle installed at first
    boot); the source image is never modified. Then the card is written, synced, read back
    and compared.

    \b
    Refused: a mounted disk (or one of its partitions mounted), the disk holding /, a partition
    instead of a whole disk, a disk smaller than the image, and a non-removable disk unless
    --force. Asks before writing unless --yes.

    \b
    Example:
      edgekit flash raspios-bookworm-arm64-lite.img.xz --device /dev/sdb \\
          --bundle edgekit-rpi5.tar.gz --hostname cam1 --ssh-key ~/.ssh/id_ed25519.pub \\
          --wifi MyNet --wifi-psk-file ~/.wifi-psk --wifi-country GB
    """
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from edgekit.deploy.flash import FirstBoot, FlashConfig, WifiConfig
    from edgekit.deploy.flash import flash as flash_image

    if config_path is None and bundle_path is not None:
        from edgekit.deploy.bundle import read_bundle_config

        cfg = read_bundle_config(bundle_path)  # board, login user, hostname as bundled
    else:
        cfg = load_config(config_path)
    cfg = cfg.with_overrides(hostname=hostname)
    if (ssid is None) != (wifi_psk_file is None):
        raise UsageError("--wifi and --wifi-psk-file go together")
    first_boot = None
    if not no_provision:
        wifi = None
        if ssid is not None:
            country = wifi_country or cfg.wifi_country
            if country is None:
                raise UsageError("--wifi needs --wifi-country (or wifi_country in edgekit.yaml)")
            wifi = WifiConfig.from_passphrase_file(ssid, wifi_psk_file, country)
        keys = tuple(k.read_text(encoding="utf-8").strip() for k in ssh_keys)
        for path, key in zip(ssh_keys, keys, strict=True):
            if not key.startswith(("ssh-", "ecdsa-", "sk-")) or "PRIVATE KEY" in key:
                raise UsageError(f"{path}: not an SSH public key (give the .pub file)")
        first_boot = FirstBoot(
            hostname=cfg.hostname, ssh_keys=keys, wifi=wifi, bundle=bundle_path, route=route
        )
    elif bundle_path or ssid or ssh_keys:
        raise UsageError("--no-provision cannot be combined with --bundle/--wifi/--ssh-key")
    config = FlashConfig(
        image=image,
        device=device,
        first_boot=first_boot,
        deploy=cfg,
        yes=yes,
        force=force,
        workdir=workdir,
    )
    columns = (
        "{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done)

        def confirm(question: str) -> bool:
            bar.stop()
            answer = click.confirm(question, default=False)
            bar.start()
            return answer

        result = flash_image(config, confirm=confirm, progress=progress)
    injected = (
        f"; first boot ({result.route}): {', '.join(result.injected)}" if result.injected else ""
    )
    click.echo(
        f"{device}: wrote and verified {result.size} bytes (sha256 {result.sha256[:16]}…){injected}"
    )


@click.command(context_settings=_CTX)
@click.argument("hosts", nargs=-1)
@click.option(
    "--bundle",
    "bundle_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Bundle made by `edgekit bundle`.",
)
@click.option(
    "--inventory",
    "-i",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Ansible inventory (HOSTS then limit it).",
)
@click.option("--user", "-u", default=None, help="SSH user (default: your ssh config's).")
@click.option(
    "--via",
    "mode",
    type=click.Choice(["auto", "ssh", "ansible"]),
    default="auto",
    show_default=True,
    help="auto: ssh for one host, Ansible for several or an inventory.",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where the generated playbook/inventory go (default: a temp folder).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the commands (and write the playbook) without running them.",
)
def deploy(
    hosts: tuple[str, ...],
    bundle_path: Path,
    inventory: Path | None,
    user: str | None,
    mode: str,
    workdir: Path | None,
    dry_run: bool,
) -> None:
    """Install a bundle on running boards over SSH and restart edgekit.service.

    \b
    One host: scp + ssh (sha256 of the upload checked, install.sh, systemctl restart).
    Several hosts or --inventory: an Ansible playbook + inventory, run by ansible-playbook
    (pip install 'edgekit[deploy]'). Needs key-based SSH and passwordless sudo on the boards.

    \b
    Examples:
      edgekit deploy pi@cam1.local --bundle edgekit-rpi5.tar.gz
      edgekit deploy cam1 cam2 cam3 --user pi --bundle b.tar.gz
      edgekit deploy --inventory fleet.yml --bundle b.tar.gz --dry-run
    """
    import shlex

    from edgekit.deploy.fleet import FleetConfig
    from edgekit.deploy.fleet import deploy as deploy_bundle

    config = FleetConfig(
        bundle=bundle_path,
        hosts=hosts,
        inventory=inventory,
        user=user,
        mode=mode,
        dry_run=dry_run,
        workdir=workdir,
    )
    result = deploy_bundle(config)
    for path in result.files:
        click.echo(f"wrote {path}")
    for cmd in result.commands:
        click.echo(("would run: " if dry_run else "ran: ") + shlex.join(cmd))
    if not dry_run:
        click.echo(f"deployed {bundle_path.name} via {result.mode}")
