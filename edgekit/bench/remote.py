"""``edgekit bench --on user@pi``: the same measurement on other machines, through SSH.

For each target, in order, one connection at a time:

1. probe: create the cache folder, check that edgekit is installed at ``remote_edgekit`` (the
   bundle's venv by default) with this machine's version, list what the cache already holds, and
   refuse to measure beside an edgekit bench/eval still running there (``running.pid``);
2. copy what is missing: models, the first frame of a non-sample ``--source`` (as a PNG) and the
   ``data`` set (packed as one tar) are named by their sha256 under
   ``<cache>/models/<sha256>/<file name>``, ``<cache>/inputs/<sha256>/frame.png`` and
   ``<cache>/data/<sha256>/``, sent as one tar stream on the connection's stdin, checked against
   their sha256 on the target and only then moved into place, so a second bench copies nothing;
3. run the target's ``edgekit bench ... --json`` (and ``edgekit eval`` per model with ``data``)
   and read its JSON back.

A target that fails (unreachable, host key refused, edgekit missing, connection lost) keeps its
error in its :class:`TargetRun`; the others go on. ``local=True`` measures this machine first,
with the same code, as the column named ``local``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from edgekit.bench.latency import BenchConfig, BenchResult
from edgekit.bench.ssh import (
    Runner,
    SSHOptions,
    Target,
    check_remote_path,
    remote_word,
    run_ssh,
)
from edgekit.errors import DatasetError, EdgekitError, ModelLoadError, RemoteError, UsageError

__all__ = [
    "DEFAULT_REMOTE_CACHE",
    "RemoteBenchConfig",
    "TargetRun",
    "bench_targets",
    "default_remote_edgekit",
]

DEFAULT_REMOTE_CACHE = "~/.cache/edgekit/bench"
EVAL_SPLITS = ("val", "train", "all")
_NAME_OK = re.compile(r"[^A-Za-z0-9_.+-]")
_FIXED_MTIME = 1577836800  # 2020-01-01: packed data sets hash the same on every run

Progress = Callable[[str], None]


def default_remote_edgekit() -> str:
    """``edgekit`` in the venv a deployed bundle installs (``<prefix>/venv/bin/edgekit``)."""
    from edgekit.deploy.config import InstallOptions

    return str(PurePosixPath(InstallOptions().prefix) / "venv" / "bin" / "edgekit")


@dataclass(frozen=True)
class RemoteBenchConfig:
    """What to measure where.

    - ``bench``: the measurement (models, runs, threads, ...), the same on every target.
    - ``targets``: SSH targets, one column each; ``local``: this machine first, as ``local``.
    - ``remote_edgekit``: the target's ``edgekit`` executable; ``remote_cache``: where copied
      models and data sets stay on the target (``~`` is the remote home).
    - ``data``: a small evaluation set (a folder, or a file whose folder is copied whole);
      each model is then scored by ``edgekit eval`` on each target, on ``eval_split`` and at
      most ``eval_max_images`` images.
    - ``timeout_s``: limit for each remote command (``None``: only SSH keep-alives).
    """

    bench: BenchConfig
    targets: tuple[Target, ...] = ()
    local: bool = False
    ssh: SSHOptions = field(default_factory=SSHOptions)
    remote_edgekit: str = field(default_factory=default_remote_edgekit)
    remote_cache: str = DEFAULT_REMOTE_CACHE
    data: Path | None = None
    eval_split: str = "val"
    eval_max_images: int | None = None
    timeout_s: float | None = None
    max_data_bytes: int = 256 << 20

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        if not self.targets and not self.local:
            raise UsageError("give at least one target (--on) or --local")
        check_remote_path(self.remote_edgekit, "--remote-edgekit")
        check_remote_path(self.remote_cache, "--remote-cache")
        if self.eval_split not in EVAL_SPLITS:
            raise UsageError(f"eval split must be one of {', '.join(EVAL_SPLITS)}")
        if self.eval_max_images is not None and self.eval_max_images < 1:
            raise UsageError(f"eval max images must be >= 1, got {self.eval_max_images}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise UsageError(f"remote timeout must be > 0, got {self.timeout_s}")
        if self.targets and None in self.bench.threads and len(self.bench.threads) > 1:
            raise UsageError("mix of default and explicit thread counts cannot run remotely")


@dataclass
class TargetRun:
    """One column: a target's machine block, bench results (``model`` = the local path), eval
    results (``edgekit eval`` JSON), what was copied, and the error that stopped it if any."""

    name: str
    host: str | None = None
    machine: dict[str, Any] = field(default_factory=dict)
    results: list[BenchResult] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    copied_files: int = 0
    copied_bytes: int = 0
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": self.host,
            "ok": self.ok,
            "error": self.error,
            "machine": self.machine,
            "results": [r.to_dict() for r in self.results],
            "eval": self.evals,
            "copied": {"files": self.copied_files, "bytes": self.copied_bytes},
            "seconds": round(self.seconds, 2),
        }


@dataclass(frozen=True)
class _Artifact:
    """A local file sent by content: it lives at ``rel`` under the target's cache."""

    local: Path
    sha256: str
    size: int
    rel: str  # models/<sha>/<name>  or  data/<sha>
    folder: bool = False  # a packed data set: unpacked into ``rel``


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _model_artifact(path: Path) -> _Artifact:
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file not found")
    digest = _sha256_file(path)
    name = _NAME_OK.sub("_", path.name) or "model.tflite"
    return _Artifact(path, digest, path.stat().st_size, f"models/{digest}/{name}")


def _data_files(root: Path) -> list[tuple[str, Path]]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file():
                files.append((path.relative_to(root).as_posix(), path))
    return files


def pack_data(data: Path, out: Path, max_bytes: int) -> tuple[str, str]:
    """Pack the evaluation set into ``out`` (a tar with sorted members and fixed metadata, so the
    same files give the same bytes); returns ``(sha256, path of data inside the pack)``. A file
    (COCO JSON, data.yaml) is packed with its whole folder."""
    if not data.exists():
        raise DatasetError(f"{data}: no such dataset file or folder")
    root = data if data.is_dir() else data.parent
    inner = "" if data.is_dir() else data.name
    files = _data_files(root)
    total = sum(p.stat().st_size for _, p in files)
    if total > max_bytes:
        raise UsageError(
            f"{root}: {total / 1e6:.0f} MB is too large to copy to the targets "
            f"(limit {max_bytes / 1e6:.0f} MB)",
            hint="give a small evaluation set in its own folder",
        )
    if not files:
        raise DatasetError(f"{root}: the dataset folder is empty")
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
        for rel, path in files:
            info = tarfile.TarInfo(rel)
            info.size = path.stat().st_size
            info.mode, info.mtime, info.uid, info.gid = 0o644, _FIXED_MTIME, 0, 0
            info.uname = info.gname = "root"
            with open(path, "rb") as fh:
                tar.addfile(info, fh)
    return _sha256_file(out), inner


def _frame_png(source: str, folder: Path) -> Path:
    """The first frame of ``source`` as a lossless PNG, so every target measures that frame."""
    import cv2

    from edgekit.bench.latency import sample_image

    image = sample_image(source)
    ok, buf = cv2.imencode(".png", image[:, :, ::-1])
    if not ok:
        raise UsageError(f"cannot encode the first frame of {source!r} as PNG")
    path = folder / "frame.png"
    path.write_bytes(buf.tobytes())
    return path


@dataclass(frozen=True)
class _Plan:
    """What every target gets: the artifacts, and where bench/eval find them."""

    models: tuple[_Artifact, ...]
    frame: _Artifact | None
    data: _Artifact | None
    data_inner: str

    @property
    def artifacts(self) -> tuple[_Artifact, ...]:
        extra = tuple(a for a in (self.frame, self.data) if a is not None)
        unique: dict[str, _Artifact] = {}
        for a in (*self.models, *extra):
            unique.setdefault(a.rel, a)
        return tuple(unique.values())


@contextmanager
def _plan(config: RemoteBenchConfig) -> Iterator[_Plan]:
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
        models = tuple(_model_artifact(Path(m)) for m in config.bench.models)
        frame = None
        if config.bench.source != "sample":
            png = _frame_png(config.bench.source, Path(tmp))
            digest = _sha256_file(png)
            frame = _Artifact(png, digest, png.stat().st_size, f"inputs/{digest}/frame.png")
        data = None
        inner = ""
        if config.data is not None:
            packed = Path(tmp) / "data.tar"
            digest, inner = pack_data(config.data, packed, config.max_data_bytes)
            data = _Artifact(packed, digest, packed.stat().st_size, f"data/{digest}", True)
        yield _Plan(models, frame, data, inner)


# --- remote scripts ------------------------------------------------------------------------


def _probe_script(config: RemoteBenchConfig, plan: _Plan) -> str:
    checks = " ".join(remote_word(a.rel) for a in plan.artifacts)
    return "\n".join(
        [
            "set -u",
            f"E={remote_word(config.remote_edgekit)}",
            f"C={remote_word(config.remote_cache)}",
            'mkdir -p "$C" && cd "$C" || exit 90',
            'echo "cache $(pwd -P)"',
            'if [ ! -e "$E" ]; then echo "edgekit missing"',
            'elif [ ! -x "$E" ] || [ -d "$E" ]; then echo "edgekit not-executable"',
            'elif v=$("$E" --version 2>&1); then echo "edgekit version $v"',
            'else echo "edgekit broken $(printf %s "$v" | tail -n 1)"; fi',
            f'for f in {checks}; do [ -e "$f" ] && echo "have $f"; done',
            'p=$(cat running.pid 2>/dev/null) && kill -0 "$p" 2>/dev/null && '
            'grep -q edgekit "/proc/$p/cmdline" 2>/dev/null && echo "busy $p"',
            "exit 0",
        ]
    )


def _upload_script(config: RemoteBenchConfig, items: Sequence[_Artifact]) -> str:
    lines = [
        "set -eu",
        f"C={remote_word(config.remote_cache)}",
        'cd "$C"',
        'i=$(mktemp -d "$C/incoming.XXXXXX")',
        "trap 'rm -rf \"$i\"' EXIT",
        'tar -xf - -C "$i"',
        'check() { [ "$(sha256sum < "$i/$1" | cut -d\' \' -f1)" = "$1" ] || '
        '{ echo "edgekit: error: $1 arrived corrupted" >&2; exit 92; }; }',
    ]
    for a in items:
        lines.append(f"check {a.sha256}")
        if a.folder:
            part = remote_word(a.rel + ".part")
            lines += [
                f"rm -rf {part}",
                f"mkdir -p {part}",
                f'tar -xf "$i/{a.sha256}" -C {part}',
                f"rm -rf {remote_word(a.rel)}",
                f"mv {part} {remote_word(a.rel)}",
            ]
        else:
            parent = remote_word(str(PurePosixPath(a.rel).parent))
            lines += [f"mkdir -p {parent}", f'mv "$i/{a.sha256}" {remote_word(a.rel)}']
    return "\n".join(lines)


def _json_script(config: RemoteBenchConfig, command: Sequence[str]) -> str:
    """Run ``edgekit COMMAND --json FILE -q`` in the cache folder; print only the JSON."""
    args = " ".join(remote_word(c) for c in command)
    return "\n".join(
        [
            "set -u",
            f"E={remote_word(config.remote_edgekit)}",
            f"C={remote_word(config.remote_cache)}",
            'cd "$C" || exit 90',
            't=$(mktemp -d "${TMPDIR:-/tmp}/edgekit-bench.XXXXXX") || exit 91',
            "trap 'rm -rf \"$t\"' EXIT",
            # In the background with its pid in the cache, so that the next probe sees it when
            # a dropped connection left it running.
            f'"$E" {args} --json "$t/out.json" -q >&2 &',
            "p=$!",
            "trap 'kill \"$p\" 2>/dev/null; exit 143' HUP INT TERM",
            'echo "$p" > running.pid',
            'wait "$p"',
            "rc=$?",
            "rm -f running.pid",
            '[ "$rc" -eq 0 ] || exit "$rc"',
            'cat "$t/out.json"',
        ]
    )


def bench_argv(bench: BenchConfig, models: Sequence[str], source: str | None) -> list[str]:
    """The ``edgekit bench`` arguments (without ``--json``) the target runs."""
    argv = ["bench", *models, "--runs", str(bench.runs), "--warmup", str(bench.warmup)]
    for t in bench.threads:
        if t is not None:
            argv += ["--threads", str(t)]
    if bench.backend:
        argv += ["--backend", bench.backend]
    if source is not None:
        argv += ["--source", source]
    if not bench.interleave:
        argv.append("--sequential")
    return argv


# --- one target -----------------------------------------------------------------------------


def _parse_probe(target: Target, config: RemoteBenchConfig, out: str) -> tuple[str, set[str]]:
    """The target's cache folder and the artifacts it holds; raises when edgekit is missing,
    of another version, or busy there."""
    from edgekit import __version__

    have: set[str] = set()
    status = cache = ""
    for line in out.splitlines():
        key, _, rest = line.partition(" ")
        if key == "have":
            have.add(rest)
        elif key == "edgekit":
            status = rest
        elif key == "cache":
            cache = rest
        elif key == "busy":
            raise RemoteError(
                f"{target.name}: an edgekit bench/eval is still running on the target "
                f"(pid {rest}, left by a dropped connection or started by someone else); "
                "measuring beside it would distort both",
                hint=f"wait for it to end, or stop it: ssh {target.destination} kill {rest}",
            )
    where = config.remote_edgekit
    hint = "deploy a bundle (edgekit deploy) or pass --remote-edgekit PATH"
    if status == "missing":
        raise RemoteError(f"{target.name}: edgekit is not installed at {where}", hint=hint)
    if status == "not-executable":
        raise RemoteError(f"{target.name}: {where} is not an executable", hint=hint)
    if status.startswith("broken"):
        raise RemoteError(f"{target.name}: {where} does not run: {status[7:]}", hint=hint)
    version = status.removeprefix("version ").rsplit(" ", 1)[-1]
    if not status.startswith("version ") or not version:
        raise RemoteError(f"{target.name}: unexpected answer from the target: {out.strip()!r}")
    if version != __version__:
        raise RemoteError(
            f"{target.name}: edgekit {version} at {where}, but this machine runs {__version__}",
            hint=f"install edgekit {__version__} on the target so both measure the same way",
        )
    return cache, have


def _upload(
    target: Target,
    config: RemoteBenchConfig,
    items: Sequence[_Artifact],
    run: Runner,
) -> None:
    with tempfile.TemporaryFile() as fh:
        with tarfile.open(fileobj=fh, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for a in items:
                info = tarfile.TarInfo(a.sha256)
                info.size, info.mode, info.mtime = a.size, 0o644, _FIXED_MTIME
                with open(a.local, "rb") as src:
                    tar.addfile(info, src)
        fh.seek(0)
        run_ssh(
            target,
            config.ssh,
            _upload_script(config, items),
            "copying files",
            stdin=fh,
            timeout=config.timeout_s,
            run=run,
        )


def _remote_json(
    target: Target, config: RemoteBenchConfig, command: Sequence[str], what: str, run: Runner
) -> dict[str, Any]:
    out = run_ssh(
        target, config.ssh, _json_script(config, command), what, timeout=config.timeout_s, run=run
    )
    try:
        doc = json.loads(out)
    except json.JSONDecodeError:
        raise RemoteError(f"{target.name}: no JSON back while {what}: {out[:200]!r}") from None
    if not isinstance(doc, dict):
        raise RemoteError(f"{target.name}: a {type(doc).__name__} back while {what}, not an object")
    return doc


def _eval_argv(config: RemoteBenchConfig, model: str, data: str) -> list[str]:
    argv = ["eval", model, "--data", data, "--split", config.eval_split]
    if config.eval_max_images is not None:
        argv += ["--max-images", str(config.eval_max_images)]
    return argv


def _with_local_models(config: RemoteBenchConfig, docs: Sequence[dict[str, Any]]) -> list[Any]:
    """Bench results in config order, their ``model`` put back to the local path."""
    pairs = [(m, t) for m in config.bench.models for t in config.bench.threads]
    if len(docs) != len(pairs):
        raise RemoteError(f"expected {len(pairs)} results, the target sent {len(docs)}")
    results = []
    for (model, _), doc in zip(pairs, docs, strict=True):
        r = BenchResult.from_dict(doc)
        results.append(replace(r, model=str(model)))
    return results


def _bench_target(
    target: Target, config: RemoteBenchConfig, plan: _Plan, run: Runner, say: Progress
) -> TargetRun:
    from edgekit import __version__

    record = TargetRun(name=target.name, host=target.destination)
    t0 = time.monotonic()
    try:
        say(f"{target.name}: connecting")
        cache, have = _parse_probe(
            target,
            config,
            run_ssh(
                target,
                config.ssh,
                _probe_script(config, plan),
                "connecting",
                timeout=config.timeout_s,
                run=run,
            ),
        )
        say(f"{target.name}: edgekit {__version__} at {config.remote_edgekit}, cache {cache}")
        missing = [a for a in plan.artifacts if a.rel not in have]
        record.copied_files = len(missing)
        record.copied_bytes = sum(a.size for a in missing)
        if missing:
            say(
                f"{target.name}: copying {len(missing)} file(s), "
                f"{record.copied_bytes / 1e6:.1f} MB ({len(plan.artifacts) - len(missing)} "
                "already there)"
            )
            _upload(target, config, missing, run)
        else:
            say(f"{target.name}: all {len(plan.artifacts)} file(s) already there, copying nothing")
        n = len(config.bench.models) * len(config.bench.threads)
        say(f"{target.name}: edgekit bench, {n} configuration(s) x {config.bench.runs} runs")
        argv = bench_argv(
            config.bench,
            [m.rel for m in plan.models],
            plan.frame.rel if plan.frame is not None else None,
        )
        doc = _remote_json(target, config, argv, "running edgekit bench", run)
        record.machine = doc.get("machine") or {}
        try:
            record.results = _with_local_models(config, doc.get("results") or [])
        except (RemoteError, KeyError, TypeError, ValueError) as exc:
            raise RemoteError(f"{target.name}: unreadable bench answer ({exc})") from None
        if plan.data is not None:
            data = str(PurePosixPath(plan.data.rel) / plan.data_inner)
            for model, art in zip(config.bench.models, plan.models, strict=True):
                say(f"{target.name}: edgekit eval {Path(model).name}")
                argv = _eval_argv(config, art.rel, data)
                res = _remote_json(target, config, argv, "running edgekit eval", run)
                res.update(model=str(model), data=str(config.data))
                record.evals.append(res)
    except EdgekitError as exc:
        record.error = str(exc)
        say(f"{target.name}: failed: {exc}")
    record.seconds = time.monotonic() - t0
    return record


def _bench_here(config: RemoteBenchConfig, plan: _Plan, say: Progress) -> TargetRun:
    from edgekit.bench.machine import bench_with_machine

    record = TargetRun(name="local")
    t0 = time.monotonic()
    try:
        n = len(config.bench.models) * len(config.bench.threads)
        say(f"local: edgekit bench, {n} configuration(s) x {config.bench.runs} runs")
        bench = config.bench
        if plan.frame is not None:
            bench = replace(bench, source=str(plan.frame.local))
        record.results, record.machine = bench_with_machine(bench)
        if config.data is not None:
            from edgekit.eval import EvalConfig, evaluate_model

            for model in config.bench.models:
                say(f"local: edgekit eval {Path(model).name}")
                result = evaluate_model(
                    EvalConfig(
                        model=Path(model),
                        data=config.data,
                        split=config.eval_split,
                        max_images=config.eval_max_images,
                    )
                )
                record.evals.append(result.to_json())
    except EdgekitError as exc:
        record.error = f"local: {exc}"
        say(f"local: failed: {exc}")
    record.seconds = time.monotonic() - t0
    return record


def bench_targets(
    config: RemoteBenchConfig,
    *,
    progress: Progress | None = None,
    run: Runner = subprocess.run,
) -> list[TargetRun]:
    """Measure on this machine (``config.local``) and on every target, one after the other;
    one :class:`TargetRun` each, in that order. A target's failure is recorded in its run
    (``error``) and the others still run. ``progress`` gets one line per step."""
    say = progress or (lambda _line: None)
    runs: list[TargetRun] = []
    with _plan(config) as plan:
        if config.local:
            runs.append(_bench_here(config, plan, say))
        for target in config.targets:
            runs.append(_bench_target(target, config, plan, run, say))
    return runs
