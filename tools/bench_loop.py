"""Loop efficiency: pipelined vs serial edgekit.loop.run on a real video and a real model.

With the annotated-video and JSONL sinks active, the pipelined loop should reach at least 0.95 of
the frame rate the interpreter alone allows, ``1 / median(invoke)``, measured in the same run;
the serial loop (capture → infer → draw → write in one thread) shows what the overlap buys.

    .venv/bin/python tools/bench_loop.py                     # the whole of vtest.avi, 1 thread
    .venv/bin/python tools/bench_loop.py --frames 100 --json out.json
    .venv/bin/python tools/bench_loop.py --fake-ms 20        # no model: a step that sleeps

Exit status 1 when the pipelined ratio is below ``--min-ratio`` (default 0.95).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
VIDEO = SHARED / "video" / "vtest.avi"
MODEL = SHARED / "models" / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"


def fake_step(ms: float) -> Callable[[Any], Any]:
    """A step that sleeps ``ms`` (releasing the GIL, like an interpreter) and reports it as invoke."""
    from edgekit.core.types import FrameResult

    def step(frame: Any) -> FrameResult:
        t0 = time.perf_counter()
        time.sleep(ms / 1e3)
        return FrameResult(frame, timings={"invoke": (time.perf_counter() - t0) * 1e3})

    return step


def warm_up(step: Callable[[Any], Any], video: Path, calls: int) -> None:
    """Run ``step`` ``calls`` times on the video's first frame, outside any measurement."""
    from edgekit.io.sources import open_source

    with open_source(str(video)) as source:
        frame = next(iter(source))
    for _ in range(calls):
        step(frame)


def run_mode(
    step: Callable[[Any], Any],
    video: Path,
    out_dir: Path,
    *,
    pipelined: bool,
    frames: int | None,
    lores: tuple[tuple[int, int], str] | None = None,
) -> dict[str, Any]:
    """One loop over ``video`` with a VideoSink (.avi, MJPG) and a JsonlSink; figures as a dict.

    ``lores`` = (model input (h, w), resize mode): the source also yields each frame resized to
    the model input (:class:`~edgekit.io.sources.LoresSource`), in the capture thread.
    """
    from edgekit.io.sinks import JsonlSink, VideoSink
    from edgekit.io.sources import LoresSource, open_source
    from edgekit.loop import run

    mode = ("pipelined" if pipelined else "serial") + (" + lores" if lores else "")
    source = open_source(str(video))
    if lores is not None:
        source = LoresSource(source, lores[0], resize_mode=lores[1])
    stem = mode.replace(" + ", "_")
    sinks = [
        VideoSink(out_dir / f"{stem}.avi", fps=source.fps),
        JsonlSink(out_dir / f"{stem}.jsonl"),
    ]
    stats = run(source, step, sinks, pipelined=pipelined, max_frames=frames)
    invoke = stats.stages["invoke"]
    bound = 1e3 / invoke.p50_ms
    figures = {
        "mode": mode,
        "frames": stats.frames,
        "dropped": stats.dropped,
        "elapsed_s": round(stats.elapsed_s, 3),
        "fps": round(stats.fps, 2),
        "invoke_p50_ms": round(invoke.p50_ms, 2),
        "invoke_bound_fps": round(bound, 2),
        "ratio": round(stats.fps / bound, 3),
        "invoke_mean_ms": round(invoke.mean_ms, 2),
        "step_mean_ms": round(stats.stages["step"].mean_ms, 2),
        # how close the loop gets to the step alone (1 / mean step): the loop's own overhead
        "step_ratio": round(stats.fps * stats.stages["step"].mean_ms / 1e3, 3),
        "stages_p50_ms": {k: round(v.p50_ms, 2) for k, v in sorted(stats.stages.items())},
    }
    with open(out_dir / f"{stem}.jsonl", encoding="utf-8") as fh:
        figures["jsonl_lines"] = sum(1 for _ in fh)
    return figures


def bench(
    *,
    video: Path = VIDEO,
    model: Path = MODEL,
    threads: int = 1,
    frames: int | None = None,
    fake_ms: float | None = None,
    out_dir: Path | None = None,
    warmup: int = 5,
) -> dict[str, Any]:
    """Serial then pipelined, each without then with the lores resize, on one step (warmed up
    first: the first invokes of an interpreter are slow); returns setup and every run's figures."""
    lores: tuple[tuple[int, int], str] | None
    if fake_ms is not None:
        step, what = fake_step(fake_ms), f"fake step sleeping {fake_ms} ms"
        lores = ((300, 300), "resize")
    else:
        from edgekit.runtime.model import Model
        from edgekit.runtime.step import make_step

        loaded = Model.load(model, threads=threads)
        step, what = make_step(loaded), f"{model.name}, {loaded.backend.name}, {threads} thread(s)"
        lores = (loaded.input_size, loaded.spec.resize_mode)
    warm_up(step, video, warmup)
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-loop-") as tmp:
        where = Path(out_dir) if out_dir is not None else Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        runs = [
            run_mode(step, video, where, pipelined=p, frames=frames, lores=low)
            for low in (None, lores)
            for p in (False, True)
        ]
    import cv2

    from edgekit.bench.machine import machine_line

    return {
        "machine": machine_line(),
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "video": str(video),
        "step": what,
        "sinks": "VideoSink (.avi MJPG) + JsonlSink",
        "runs": runs,
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        f"machine: {result['machine']}; step: {result['step']}; sinks: {result['sinks']}; "
        f"load average after: {result['load_average_after']}",
        "| loop | frames | fps | median invoke (ms) | 1/median invoke (fps) | ratio "
        "| mean invoke (ms) | mean step (ms) | fps × mean step |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['mode']} | {r['frames']} | {r['fps']:.1f} | {r['invoke_p50_ms']:.2f} "
            f"| {r['invoke_bound_fps']:.1f} | **{r['ratio']:.3f}** | {r['invoke_mean_ms']:.2f} "
            f"| {r['step_mean_ms']:.2f} | {r['step_ratio']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    parser.add_argument(
        "--frames", type=int, default=None, help="stop after N frames (default: all)"
    )
    parser.add_argument("--fake-ms", type=float, default=None, help="no model: a step sleeping MS")
    parser.add_argument("--out", type=Path, default=None, help="keep the videos/JSONL here")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    parser.add_argument("--min-ratio", type=float, default=0.95)
    args = parser.parse_args(argv)
    for path in [args.video] + ([] if args.fake_ms is not None else [args.model]):
        if not path.is_file():
            print(f"bench_loop: no such file: {path}", file=sys.stderr)
            return 2
    result = bench(
        video=args.video,
        model=args.model,
        threads=args.threads,
        frames=args.frames,
        fake_ms=args.fake_ms,
        out_dir=args.out,
        warmup=args.warmup,
    )
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    best = max(r["ratio"] for r in result["runs"] if r["mode"].startswith("pipelined"))
    return 0 if best >= args.min_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
