"""The live web preview under load: what 0 to 50 MJPEG viewers, and viewers that read a few
bytes a second or stop reading, cost the inference loop running next to them.

Each run is ``edgekit.loop.run`` for ``--seconds`` with a ``PreviewSink`` on 127.0.0.1 while a
separate process (so the viewers do not share this process's GIL) holds the viewers open:
``normal`` ones read the stream as fast as it comes, ``slow`` ones read 4 bytes a second,
``stalled`` ones read the response head and then nothing. Each round runs every load between
two runs of "0 viewers" (the preview serving nobody: A B A C A ...) and divides its fps by the
mean of those two, so load from other processes that drifts over seconds weighs on both sides
of each ratio; the "0 viewers" row shows how much the same load moves from run to run. Reported
per load (medians over rounds): loop fps and that ratio (min–max), the step's invoke p50, CPU
time of this process (loop + server) per frame, the viewers' process CPU, peak RSS above the RSS
before the sink was made, JPEG encodes, the median viewer's received frames per second, and the
slow/stalled viewers the server dropped (and when the last was dropped, from the run's start).

    .venv/bin/python tools/bench_preview.py                          # SSD (shared data), 6 rounds
    .venv/bin/python tools/bench_preview.py --quick --json out.json  # a few seconds, fake step
    .venv/bin/python -m pytest tests/serve/test_serve_load.py        # the quick run, checked

The model is SSD MobileNet V1 from ``../shared/data/models`` (1 thread) on frames of
``../shared/data/video/vtest.avi``, both decoded once into memory; ``--fake-ms N`` (and
``--quick``) replaces the model with a step that sleeps N ms, and missing shared data with
synthetic frames. The server's write timeout is 2 s here (``PreviewLimits`` default: 5 s) so
that stalled viewers are dropped inside a 4 s run. All traffic is on loopback; every socket and
process is closed at the end. Exit status 1 when a check fails: with ``--min-ratio R``, a load's
median fps ratio below R; always: a slow or stalled viewer not dropped, a reading viewer that
was dropped or received nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
VIDEO = SHARED / "video" / "vtest.avi"
MODEL = SHARED / "models" / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
BOUNDARY = b"--edgekitframe"


@dataclass(frozen=True)
class Config:
    """One load: ``preview`` False runs the loop with no preview at all."""

    name: str
    normal: int = 0
    slow: int = 0
    stalled: int = 0
    preview: bool = True

    @property
    def viewers(self) -> int:
        return self.normal + self.slow + self.stalled


CONFIGS = (
    Config("no preview", preview=False),
    Config("0 viewers"),
    Config("1 viewer", normal=1),
    Config("10 viewers", normal=10),
    Config("50 viewers", normal=50),
    Config("1 viewer + 3 slow + 2 stalled", normal=1, slow=3, stalled=2),
    Config("50 viewers + 3 slow + 2 stalled", normal=50, slow=3, stalled=2),
)
QUICK_CONFIGS = (
    Config("0 viewers"),
    Config("10 viewers", normal=10),
    Config("1 viewer + 2 slow + 2 stalled", normal=1, slow=2, stalled=2),
)
BASELINE = "0 viewers"
#: ``--quick`` (and the test suite's short run): a sleeping step, short loads, a short timeout.
QUICK: dict[str, Any] = {
    "configs": QUICK_CONFIGS,
    "rounds": 1,
    "seconds": 1.2,
    "fake_ms": 10.0,
    "write_timeout": 0.5,
    "frames": 8,
    "preview_fps": None,
}


# --- the viewers (a child process) ---------------------------------------------------------------


def viewers_main(
    port: int, normal: int, slow: int, stalled: int, seconds: float, stop: Any = None
) -> dict:
    """Open the viewers, hold them for ``seconds`` or until ``stop`` (a readable file, e.g.
    stdin) reaches its end, and report what each one got."""
    kinds = ["normal"] * normal + ["slow"] * slow + ["stalled"] * stalled
    sel = selectors.DefaultSelector()
    state = []
    for kind in kinds:
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        if kind != "normal":  # a small receive buffer, like a slow phone's: full in a few frames
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        conn.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
        conn.setblocking(False)
        item = {"kind": kind, "conn": conn, "bytes": 0, "frames": 0, "tail": b"", "closed": False,
                "closed_at": None}  # fmt: skip
        state.append(item)
        if kind == "normal":
            sel.register(conn, selectors.EVENT_READ, item)
    if stop is not None:
        sel.register(stop, selectors.EVENT_READ, None)
    print("ready", flush=True)
    t0 = time.monotonic()
    next_trickle = t0
    stopped = False
    while not stopped and (now := time.monotonic()) - t0 < seconds:
        for key, _ in sel.select(timeout=0.05):
            if key.data is None:  # the parent closed our stdin: its run is over
                stopped = True
                continue
            _read(key.data, 1 << 20)
            if key.data["closed"]:
                sel.unregister(key.fileobj)
        if now >= next_trickle:  # slow viewers: 1 byte every 0.25 s; stalled: the head only
            next_trickle = now + 0.25
            for item in state:
                if item["closed"] or item["kind"] == "normal":
                    continue
                if item["kind"] == "slow" or item["bytes"] < 64:
                    _read(item, 1 if item["kind"] == "slow" else 64)
    for item in state:  # did the server close the slow and stalled ones? drain to see
        if not item["closed"] and item["kind"] != "normal":
            _drain(item)
    out = []
    for item in state:
        item["conn"].close()
        out.append({k: item[k] for k in ("kind", "bytes", "frames", "closed", "closed_at")})
    sel.close()
    cpu = os.times()
    return {"viewers": out, "seconds": seconds, "cpu_s": cpu.user + cpu.system}


def _read(item: dict, size: int) -> None:
    try:
        data = item["conn"].recv(size)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if not data:
        item["closed"] = True
        item["closed_at"] = time.monotonic()  # CLOCK_MONOTONIC: comparable across processes
        return
    item["bytes"] += len(data)
    joined = item["tail"] + data
    item["frames"] += joined.count(BOUNDARY)
    item["tail"] = joined[-(len(BOUNDARY) - 1) :]


def _drain(item: dict, grace_s: float = 0.2) -> None:
    """Read what is buffered: a connection the server closed ends in EOF."""
    end = time.monotonic() + grace_s
    while not item["closed"]:
        try:
            data = item["conn"].recv(1 << 20)
        except BlockingIOError:
            if time.monotonic() > end:
                return
            time.sleep(0.01)
            continue
        except OSError:
            data = b""
        if not data:
            item["closed"] = True
        else:
            item["bytes"] += len(data)


# --- the loop side --------------------------------------------------------------------------------


def rss_mb() -> float:
    """This process's resident memory in MB (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class CycleSource:
    """Frames decoded once, repeated for ever (not live: every frame is processed)."""

    live = False
    name = "memory"
    fps = 25.0

    def __init__(self, images: list[np.ndarray]) -> None:
        self.images = images

    def __iter__(self) -> Iterator[Any]:
        from edgekit.core.types import Frame

        k = 0
        while True:
            yield Frame(self.images[k % len(self.images)], k, k, "memory")
            k += 1

    def close(self) -> None:
        pass


def load_frames(count: int) -> tuple[list[np.ndarray], str]:
    """The first ``count`` frames of vtest.avi, or synthetic 480x360 frames without it."""
    if VIDEO.is_file():
        from edgekit.io.sources import open_source

        with open_source(str(VIDEO)) as source:
            images = [f.image for _, f in zip(range(count), source, strict=False)]
        return images, f"{VIDEO.name} ({images[0].shape[1]}x{images[0].shape[0]})"
    h, w = 360, 480
    y, x = np.mgrid[0:h, 0:w]
    images = []
    for k in range(count):
        image = np.stack([(x + 4 * k) % 256, (y + 2 * k) % 256, (x + y) % 256], -1)
        images.append(image.astype(np.uint8))
    return images, f"synthetic ({w}x{h})"


def make_step(fake_ms: float | None, threads: int) -> tuple[Callable[[Any], Any], str, Any]:
    """(step, description, LoresSource arguments or None)."""
    from edgekit.core.types import FrameResult

    if fake_ms is not None or not MODEL.is_file():
        ms = 20.0 if fake_ms is None else fake_ms

        def step(frame: Any) -> FrameResult:
            t0 = time.perf_counter()
            time.sleep(ms / 1e3)
            return FrameResult(frame, timings={"invoke": (time.perf_counter() - t0) * 1e3})

        return step, f"fake step sleeping {ms:g} ms", None
    from edgekit.runtime.model import Model
    from edgekit.runtime.step import make_step as model_step

    model = Model.load(MODEL, threads=threads)
    what = f"{MODEL.name}, {model.backend.name}, {threads} thread(s)"
    return model_step(model, score_threshold=0.5), what, (model.input_size, model.spec.resize_mode)


def run_config(
    config: Config,
    step: Callable[[Any], Any],
    images: list[np.ndarray],
    lores: Any,
    seconds: float,
    write_timeout: float,
    preview_fps: float | None = None,
) -> dict[str, Any]:
    """One configuration: the loop for ``seconds`` with the viewers of ``config``; the preview
    encodes at most ``preview_fps`` frames a second (None: every frame)."""
    from edgekit.io.sources import LoresSource
    from edgekit.loop import run
    from edgekit.serve import PreviewLimits, PreviewSink

    base_rss = rss_mb()
    sinks: list[Any] = []
    child = None
    sink = None
    if config.preview:
        limits = PreviewLimits(write_timeout_s=write_timeout)
        sink = PreviewSink("127.0.0.1", 0, limits=limits, max_fps=preview_fps)
        sinks.append(sink)
    if config.viewers:
        child = subprocess.Popen(
            [sys.executable, __file__, "--viewers", str(sink.port), str(config.normal),
             str(config.slow), str(config.stalled), str(seconds + 30.0)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the viewer process did not start")
        deadline = time.monotonic() + 10
        while sink.hub.clients < config.viewers and time.monotonic() < deadline:
            time.sleep(0.01)
    peak = [base_rss]
    drops: list[float] = []
    done = threading.Event()
    t_start = time.monotonic()

    def sample() -> None:
        seen = 0
        while not done.wait(0.05):
            peak[0] = max(peak[0], rss_mb())
            if sink is not None:
                now = sink.server.counts()["dropped_stalled"]
                drops.extend([time.monotonic() - t_start] * (now - seen))
                seen = now

    sampler = threading.Thread(target=sample, name="bench-sampler")
    sampler.start()
    source: Any = CycleSource(images)
    if lores is not None:
        source = LoresSource(source, lores[0], resize_mode=lores[1])
    t_run = time.monotonic()
    cpu0 = os.times()
    stats = run(source, step, sinks, duration=seconds, install_signal_handlers=False)
    t_end = t_run + stats.elapsed_s  # the loop stopped here, then closed the preview
    cpu1 = os.times()
    cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    done.set()
    sampler.join()
    counts = sink.server.counts() if sink is not None else {}
    viewers: list[dict] = []
    viewer_cpu_s = 0.0
    if child is not None:
        out, _ = child.communicate(timeout=60)  # closes its stdin: the viewers stop
        if child.returncode != 0:
            raise RuntimeError(f"the viewer process failed (exit {child.returncode})")
        report = json.loads(out)
        viewers, viewer_cpu_s = report["viewers"], report["cpu_s"]
    normal = [v["frames"] / seconds for v in viewers if v["kind"] == "normal"]
    return {
        "config": config.name,
        "fps": stats.fps,
        "frames": stats.frames,
        "cpu_ms_per_frame": 1e3 * cpu_s / max(stats.frames, 1),  # this process: loop + server
        "invoke_p50_ms": stats.stages["invoke"].p50_ms if "invoke" in stats.stages else 0.0,
        "viewer_cpu_per_s": viewer_cpu_s / stats.elapsed_s,
        "rss_growth_mb": peak[0] - base_rss,
        "rss_peak_mb": peak[0],
        "encoded": sink.encoded if sink is not None else 0,
        "viewer_fps_median": statistics.median(normal) if normal else None,
        "viewers_with_nothing": sum(1 for f in normal if f == 0),
        "normal_closed": sum(
            1
            for v in viewers
            if v["kind"] == "normal" and v["closed_at"] is not None and v["closed_at"] < t_end
        ),
        "slow_closed": sum(1 for v in viewers if v["kind"] != "normal" and v["closed"]),
        "slow_or_stalled": config.slow + config.stalled,
        "dropped": counts.get("dropped_stalled", 0),
        "dropped_by_s": round(max(drops), 2) if drops else None,
        "refused": counts.get("refused", 0),
        "errors": counts.get("errors", 0),
        "sink_errors": dict(stats.sink_errors),
    }


def bench(
    *,
    configs: tuple[Config, ...] = CONFIGS,
    rounds: int = 6,
    seconds: float = 4.0,
    fake_ms: float | None = None,
    threads: int = 1,
    write_timeout: float = 2.0,
    frames: int = 100,
    preview_fps: float | None = 15.0,
) -> dict[str, Any]:
    """Each round runs every configuration between two runs of "0 viewers" (A B A C A ...),
    and divides its fps by the mean of the two around it, so load from other processes that
    drifts over seconds touches both sides of each ratio alike. Medians over rounds."""
    step, what, lores = make_step(fake_ms, threads)
    images, frames_what = load_frames(frames)
    for image in images[:5]:  # warm up: the first invokes of an interpreter are slow
        from edgekit.core.types import Frame

        step(Frame(image, 0, 0, "warmup"))
    base_config = next(c for c in configs if c.name == BASELINE)
    others = [c for c in configs if c.name != BASELINE]

    def once(config: Config, r: int) -> dict[str, Any]:
        row = run_config(config, step, images, lores, seconds, write_timeout, preview_fps)
        row["round"] = r
        runs.append(row)
        return row

    runs: list[dict[str, Any]] = []
    loads = [os.getloadavg()[0] if hasattr(os, "getloadavg") else None]
    for r in range(rounds):
        before = once(base_config, r)
        for config in others:
            row = once(config, r)
            after = once(base_config, r)
            row["ratio"] = row["fps"] / ((before["fps"] + after["fps"]) / 2)
            before = after
        loads.append(os.getloadavg()[0] if hasattr(os, "getloadavg") else None)
    base_fps = [x["fps"] for x in runs if x["config"] == BASELINE]
    middle = statistics.median(base_fps)
    for x in runs:
        if x["config"] == BASELINE:
            x["ratio"] = x["fps"] / middle  # the spread: how much the same load moves
    rows = []
    for config in configs:
        mine = [x for x in runs if x["config"] == config.name]
        ratios = [x["ratio"] for x in mine]
        rows.append(
            {
                "config": config.name,
                "viewers": config.viewers,
                "fps": statistics.median(x["fps"] for x in mine),
                "ratio": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "invoke_p50_ms": statistics.median(x["invoke_p50_ms"] for x in mine),
                "cpu_ms_per_frame": statistics.median(x["cpu_ms_per_frame"] for x in mine),
                "viewer_cpu_per_s": statistics.median(x["viewer_cpu_per_s"] for x in mine),
                "rss_growth_mb": max(x["rss_growth_mb"] for x in mine),
                "encoded": statistics.median(x["encoded"] for x in mine),
                "viewer_fps_median": _median_or_none(x["viewer_fps_median"] for x in mine),
                "viewers_with_nothing": max(x["viewers_with_nothing"] for x in mine),
                "normal_closed": max(x["normal_closed"] for x in mine),
                "slow_closed": min(x["slow_closed"] for x in mine),
                "slow_or_stalled": config.slow + config.stalled,
                "dropped": min(x["dropped"] for x in mine),
                "dropped_by_s": _max_or_none(x["dropped_by_s"] for x in mine),
                "refused": max(x["refused"] for x in mine),
                "errors": max(x["errors"] for x in mine),
            }
        )
    from edgekit.bench.machine import machine_line

    return {
        "setup": {
            "step": what,
            "frames": frames_what,
            "seconds": seconds,
            "rounds": rounds,
            "write_timeout_s": write_timeout,
            "preview_fps": preview_fps,
            "machine": machine_line(),
            "python": platform.python_version(),
            "load_average": [round(v, 1) for v in loads if v is not None],
        },
        "rows": rows,
        "runs": runs,
    }


def _median_or_none(values: Any) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None


def _max_or_none(values: Any) -> float | None:
    got = [v for v in values if v is not None]
    return max(got) if got else None


def problems(result: dict[str, Any], min_ratio: float | None) -> list[str]:
    """What the run got wrong: fps ratio (when asked), undropped slow viewers, starved viewers."""
    out = []
    for row in result["rows"]:
        baseline = row["config"] == BASELINE
        if min_ratio is not None and not baseline and row["ratio"] < min_ratio:
            out.append(f"{row['config']}: fps ratio {row['ratio']:.3f} < {min_ratio}")
        if row["dropped"] < row["slow_or_stalled"]:
            out.append(
                f"{row['config']}: {row['dropped']} of {row['slow_or_stalled']} slow/stalled "
                "viewers dropped"
            )
        if row["slow_closed"] < row["slow_or_stalled"]:
            out.append(f"{row['config']}: a slow/stalled viewer's connection stayed open")
        if row["viewers_with_nothing"]:
            out.append(f"{row['config']}: {row['viewers_with_nothing']} viewer(s) got no frame")
        if row["normal_closed"]:
            out.append(f"{row['config']}: {row['normal_closed']} reading viewer(s) were dropped")
    return out


def table(result: dict[str, Any]) -> str:
    """The Markdown table of the medians."""

    def fmt(value: Any, spec: str) -> str:
        return "–" if value is None else format(value, spec)

    lines = [
        "| load | loop fps | fps ratio to 0 viewers, median (min–max) | invoke p50 ms | "
        "CPU ms per frame, loop + server | viewers' CPU (cores) | peak RSS growth MB | "
        "JPEG encodes | median viewer fps | slow/stalled dropped (last at s) | refused | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["rows"]:
        ratio = (
            f"{row['ratio']:.3f} ({row['ratio_min']:.3f}–{row['ratio_max']:.3f})"
            if row["ratio"] is not None
            else "–"
        )
        dropped = (
            f"{row['dropped']} of {row['slow_or_stalled']} ({fmt(row['dropped_by_s'], '.1f')})"
            if row["slow_or_stalled"]
            else "–"
        )
        lines.append(
            f"| {row['config']} | {row['fps']:.1f} | {ratio} | {row['invoke_p50_ms']:.1f} | "
            f"{row['cpu_ms_per_frame']:.1f} | {row['viewer_cpu_per_s']:.2f} | "
            f"{row['rss_growth_mb']:.1f} | {row['encoded']:.0f} | "
            f"{fmt(row['viewer_fps_median'], '.1f')} | {dropped} | {row['refused']} | "
            f"{row['errors']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--viewers"]:  # the child process
        port, normal, slow, stalled = (int(v) for v in argv[1:5])
        report = viewers_main(port, normal, slow, stalled, float(argv[5]), stop=sys.stdin)
        print(json.dumps(report))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=4.0, help="per configuration and round")
    parser.add_argument("--fake-ms", type=float, default=None, help="a sleeping step, no model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--write-timeout", type=float, default=2.0, help="the server's (PreviewLimits default 5)"
    )
    parser.add_argument(
        "--preview-fps",
        type=float,
        default=15.0,
        help="frames a second the preview encodes at most (edgekit --serve-fps; 0: every frame)",
    )
    parser.add_argument("--min-ratio", type=float, default=None, help="fail below this ratio")
    parser.add_argument("--quick", action="store_true", help="3 loads, 1 round, 1.2 s, fake step")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    kwargs: dict[str, Any] = {
        "rounds": args.rounds,
        "seconds": args.seconds,
        "fake_ms": args.fake_ms,
        "threads": args.threads,
        "write_timeout": args.write_timeout,
        "preview_fps": args.preview_fps or None,
    }
    if args.quick:
        kwargs.update(QUICK)
        if args.fake_ms is not None:
            kwargs["fake_ms"] = args.fake_ms
    result = bench(**kwargs)
    setup = result["setup"]
    print(
        f"{setup['step']}; frames {setup['frames']}; {setup['seconds']:g} s per load, "
        f"{setup['rounds']} round(s), interleaved; server write timeout "
        f"{setup['write_timeout_s']:g} s; preview encodes at most {setup['preview_fps'] or 'every'} "
        f"frame(s)/s; {setup['machine']}; load average (1 min) at each "
        f"round's end {setup['load_average']}"
    )
    print(table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    found = problems(result, args.min_ratio)
    for line in found:
        print(f"FAIL: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
