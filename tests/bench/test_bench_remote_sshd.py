"""``edgekit bench --on``: against a real sshd on loopback (see conftest.py), the target being
this machine in a second venv. Skipped when sshd is not installed."""

from __future__ import annotations

import csv
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import cv2
import pytest

import edgekit
from edgekit.bench import BenchConfig
from edgekit.bench.remote import RemoteBenchConfig, bench_targets
from edgekit.bench.ssh import SSHOptions, Target, read_inventory

psutil = pytest.importorskip("psutil")

MODEL = Path(edgekit.__file__).parent / "assets" / "detect_default.tflite"


def _grace_hopper() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


@pytest.fixture(scope="module")
def checkset(tmp_path_factory) -> Path:
    """A two-image COCO set (the sample photo and its mirror, one person each)."""
    root = tmp_path_factory.mktemp("checkset")
    (root / "images").mkdir()
    image = cv2.imread(str(_grace_hopper()))
    cv2.imwrite(str(root / "images" / "a.jpg"), image)
    cv2.imwrite(str(root / "images" / "b.jpg"), image[:, ::-1])
    h, w = image.shape[:2]
    box = [40.0, 70.0, w - 80.0, h - 70.0]
    mirrored = [w - box[0] - box[2], *box[1:]]
    doc = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": w, "height": h},
            {"id": 2, "file_name": "b.jpg", "width": w, "height": h},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": box, "area": box[2] * box[3],
             "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": mirrored,
             "area": box[2] * box[3], "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "person"}],
    }  # fmt: skip
    path = root / "instances.json"
    path.write_text(json.dumps(doc))
    return path


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgekit", "bench", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def two_column_run(sshd, target_edgekit, checkset, tmp_path_factory):
    """One CLI run: this machine as 'local' and target-a through SSH, with --data."""
    out = tmp_path_factory.mktemp("two_columns")
    cache = out / "remote-cache"
    args = [
        *(MODEL, "--on", "target-a", "--local", "-F", sshd.ssh_config),
        *("--remote-edgekit", target_edgekit, "--remote-cache", cache),
        *("--runs", "5", "--warmup", "1", "--threads", "1"),
        *("--data", checkset, "--split", "all"),
        *("--json", out / "b.json", "--csv", out / "b.csv", "--plot", out / "b.png"),
    ]
    proc = _cli(*args)
    return proc, out, cache, args


def test_table_has_a_local_and_an_ssh_column(two_column_run):
    proc, out, cache, _ = two_column_run
    assert proc.returncode == 0, proc.stderr
    header = next(line for line in proc.stdout.splitlines() if "target-a" in line)
    assert "local" in header
    for row in ("board", "governor", "throttled", "invoke", "total", "mAP", "AP50"):
        assert row in proc.stdout, row
    assert "target-a: copying" in proc.stderr  # progress on stderr

    doc = json.loads((out / "b.json").read_text())
    local, remote = doc["targets"]
    assert (local["name"], remote["name"]) == ("local", "target-a")
    assert local["ok"] and remote["ok"] and remote["error"] is None
    for t in (local, remote):
        (r,) = t["results"]
        assert r["model"] == str(MODEL) and r["threads"] == 1 and r["runs"] == 5
        assert r["kind"] == "detect/ssd_postprocess" and r["stages"]["invoke"]["p50_ms"] > 0
        # the same machine block on both sides, thermal state before and after
        assert {"cpu", "cores", "board", "governor", "edgekit", "before", "after"} <= set(
            t["machine"]
        )
        assert set(t["machine"]["after"]) >= {"temp_c", "throttled", "throttled_flags"}
    assert remote["machine"]["edgekit"] == edgekit.__version__
    # the deployed artifact scored on the target: same file, same images, same numbers
    (ev_local,) = local["eval"]
    (ev_remote,) = remote["eval"]
    assert ev_remote["images"] == ev_local["images"] == 2
    assert ev_remote["model"] == str(MODEL)
    assert ev_remote["metrics"] == ev_local["metrics"]
    assert remote["copied"]["files"] == 2  # the model and the packed data set
    assert (cache / "models").is_dir() and not list(cache.glob("incoming.*"))

    rows = list(csv.DictReader((out / "b.csv").open()))
    assert {r["target"] for r in rows} == {"local", "target-a"} and len(rows) == 2 * 4
    assert all(r["eval_mAP"] != "" for r in rows)
    assert (out / "b.png").read_bytes()[:4] == b"\x89PNG"


def test_a_second_run_copies_nothing(two_column_run):
    proc, out, cache, args = two_column_run
    assert proc.returncode == 0, proc.stderr
    model_file = next((cache / "models").glob("*/detect_default.tflite"))
    before = model_file.stat()
    again = _cli(*[a for a in args if a != "--local"])
    assert again.returncode == 0, again.stderr
    assert "already there, copying nothing" in again.stderr
    (remote,) = json.loads((out / "b.json").read_text())["targets"]
    assert remote["name"] == "target-a" and remote["copied"] == {"files": 0, "bytes": 0}
    after = model_file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def _config(tmp_path, targets, *, edgekit_path, ssh, runs=3) -> RemoteBenchConfig:
    return RemoteBenchConfig(
        bench=BenchConfig(models=(MODEL,), runs=runs, warmup=1, threads=(1,)),
        targets=tuple(targets),
        ssh=ssh,
        remote_edgekit=str(edgekit_path),
        remote_cache=str(tmp_path / "cache"),
    )


@pytest.mark.parametrize("known", ["other key", "unknown host"])
def test_a_wrong_host_key_is_refused(sshd, tmp_path, known):
    bad = tmp_path / "known_hosts"
    if known == "other key":
        other = tmp_path / "other"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True
        )
        kind, key = (tmp_path / "other.pub").read_text().split()[:2]
        bad.write_text(f"[127.0.0.1]:{sshd.port} {kind} {key}\n")
    else:
        bad.write_text("")
    ssh = SSHOptions(config=sshd.ssh_config, known_hosts=bad)
    (run,) = bench_targets(
        _config(tmp_path, [Target("target-a", "target-a")], edgekit_path="/nonexistent", ssh=ssh)
    )
    assert not run.ok and run.error.startswith("target-a: host key verification failed")
    assert "while connecting" in run.error
    assert not (tmp_path / "cache").exists()  # nothing ran on the target
    # the right key (from the ssh config's known_hosts) passes the same check
    (good,) = bench_targets(
        _config(
            tmp_path,
            [Target("target-a", "target-a")],
            edgekit_path="/nonexistent",
            ssh=SSHOptions(config=sshd.ssh_config),
        )
    )
    assert "host key" not in (good.error or "") and "not installed" in (good.error or "")


def test_a_target_without_edgekit_gives_a_clear_error(sshd, tmp_path):
    empty = tmp_path / "empty-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(empty)], check=True)
    missing = empty / "bin" / "edgekit"
    ssh = SSHOptions(config=sshd.ssh_config)
    (run,) = bench_targets(
        _config(tmp_path, [Target("target-a", "target-a")], edgekit_path=missing, ssh=ssh)
    )
    assert run.error == (
        f"target-a: edgekit is not installed at {missing} "
        "(deploy a bundle (edgekit deploy) or pass --remote-edgekit PATH)"
    )
    assert run.results == [] and run.copied_files == 0  # nothing copied to a useless target

    # and through the CLI: one line, exit code 10
    proc = _cli(MODEL, "--on", "target-a", "-F", sshd.ssh_config, "--remote-edgekit", missing)
    assert proc.returncode == 10
    assert proc.stderr.strip().splitlines()[-1] == f"edgekit: error: {run.error}"
    assert "Traceback" not in proc.stderr


def test_a_target_with_another_edgekit_version_is_refused(sshd, tmp_path):
    fake = tmp_path / "edgekit"
    fake.write_text("#!/bin/sh\necho 'edgekit, version 0.0.1'\n")
    fake.chmod(0o755)
    (run,) = bench_targets(
        _config(
            tmp_path,
            [Target("target-a", "target-a")],
            edgekit_path=fake,
            ssh=SSHOptions(config=sshd.ssh_config),
        )
    )
    assert run.error.startswith(
        f"target-a: edgekit 0.0.1 at {fake}, but this machine runs {edgekit.__version__}"
    )


def _bench_process(cwd: Path, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in psutil.process_iter(["cmdline"]):
            try:
                cmd = p.info["cmdline"] or []
                is_bench = "bench" in cmd and any(c.endswith("/bin/edgekit") for c in cmd)
                if is_bench and Path(p.cwd()).resolve() == cwd.resolve():
                    return p
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        time.sleep(0.02)
    raise TimeoutError("the remote edgekit bench never started")


def _session_of(proc):
    """The sshd process serving this command's connection ('sshd: user@notty')."""
    for parent in proc.parents():
        if parent.name() == "sshd":
            return parent
    raise LookupError("no sshd above the remote command")


@pytest.mark.parametrize("kill", ["connection", "remote command"])
def test_a_target_that_drops_mid_run_is_named_and_the_others_kept(
    sshd, target_edgekit, tmp_path, kill, caplog
):
    inventory = tmp_path / "fleet.ini"
    inventory.write_text(
        "[edgekit]\n"
        + "".join(
            f"{name} ansible_host=127.0.0.1 ansible_port={sshd.port} ansible_user={sshd.user} "
            f"ansible_ssh_private_key_file={sshd.identity}\n"
            for name in ("cam-a", "cam-b")
        )
    )
    targets = read_inventory(inventory)
    assert [(t.name, t.host, t.port) for t in targets] == [
        ("cam-a", "127.0.0.1", sshd.port),
        ("cam-b", "127.0.0.1", sshd.port),
    ]
    config = _config(
        tmp_path,
        targets,
        edgekit_path=target_edgekit,
        ssh=SSHOptions(known_hosts=sshd.known_hosts),
        runs=200,
    )
    (tmp_path / "cache").mkdir()
    killed: list[str] = []
    remote: list = []

    def killer() -> None:
        proc = _bench_process(tmp_path / "cache")
        remote.append(proc)
        victim = proc
        if kill == "connection":
            proc.send_signal(signal.SIGSTOP)  # keep the orphan alive for the second run below
            victim = _session_of(proc)
        killed.append(" ".join(victim.cmdline()))
        victim.send_signal(signal.SIGKILL)

    threads: list[threading.Thread] = []

    def progress(line: str) -> None:
        if line.startswith("cam-b: edgekit bench"):
            threads.append(threading.Thread(target=killer, daemon=True))
            threads[-1].start()

    caplog.set_level(logging.INFO, logger="edgekit")
    try:
        runs = bench_targets(config, progress=progress)
        for t in threads:
            t.join(timeout=60)
        if kill == "connection":
            # A dropped connection leaves the target's command running: a new bench there
            # refuses to measure beside it, and says how to stop it.
            (again,) = bench_targets(replace(config, targets=targets[1:]))
            assert again.error.startswith(
                f"cam-b: an edgekit bench/eval is still running on the target (pid {remote[0].pid}"
            ), again.error
            assert f"kill {remote[0].pid}" in again.error
    finally:
        for proc in remote:
            if proc.is_running():
                proc.kill()
    assert killed, "nothing was killed"
    a, b = runs
    assert a.ok and len(a.results) == 1 and a.results[0].stages["total"].p50_ms > 0
    assert not b.ok and b.results == []
    expected = (
        "cam-b: connection lost" if kill == "connection" else "cam-b: the remote command was killed"
    )
    assert b.error.startswith(expected) and "while running edgekit bench" in b.error, b.error
    # no key material in the log lines
    secret = sshd.identity.read_text().splitlines()[1]
    assert secret not in caplog.text and str(sshd.identity) in caplog.text
    # the killed run leaves no half-written file in the cache
    assert not list((tmp_path / "cache").glob("incoming.*"))
