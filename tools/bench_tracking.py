"""Tracking on a real video without ground truth: fragmentation proxies per tracker setting.

Runs the SSD MobileNet V1 COCO model (``../shared/data/models``) once over the first frames of
``../shared/data/video/vtest.avi`` (pedestrians), then the tracker in several configurations
over the same detections, and prints one table row per configuration for the ``person`` class:
people per frame, confirmed tracks, mean/median track length (frames), tracks born / ended
away from the image edges (mostly fragments: a lost person picked up under a new id) and the
tracker's own time per frame.

    .venv/bin/python tools/bench_tracking.py                 # 200 frames, score 0.5
    .venv/bin/python tools/bench_tracking.py --frames 400 --json tracking.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from edgekit.core.tracking import Tracker, TrackerConfig, summarize_tracks
from edgekit.io.sources import open_source
from edgekit.runtime.model import Model

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
VIDEO = SHARED / "video" / "vtest.avi"
MODEL = SHARED / "models" / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
PERSON = 0

CONFIGS: dict[str, TrackerConfig] = {
    "default (Kalman, buffer 0.5, min_hits 3, max_age 20)": TrackerConfig(),
    "buffer 0 (plain IoU, SORT-like)": TrackerConfig(buffer=0.0),
    "buffer 0, no Kalman (last box)": TrackerConfig(buffer=0.0, kalman=False),
    "max_age 5": TrackerConfig(max_age=5),
    "min_hits 1": TrackerConfig(min_hits=1),
    "buffer 1.0": TrackerConfig(buffer=1.0),
}


def detect(frames: int, score: float, threads: int) -> list[tuple]:
    model = Model.load(MODEL, threads=threads)
    source = open_source(str(VIDEO))
    out = []
    try:
        for frame in source:
            out.append(model.predict(frame.image, score_threshold=score).detections)
            if len(out) >= frames:
                break
    finally:
        source.close()
    return out


def evaluate(detections: list[tuple], config: TrackerConfig) -> dict:
    tracker = Tracker(config)
    tracked, times = [], []
    for dets in detections:
        t0 = time.perf_counter()
        tracked.append(tracker.update(dets))
        times.append((time.perf_counter() - t0) * 1e3)
    s = summarize_tracks(tracked, class_id=PERSON)
    return {
        "frames": s.frames,
        "people_per_frame": round(s.per_frame, 2),
        "coverage": round(s.coverage, 3),
        "tracks": s.tracks,
        "mean_length": round(s.mean_length, 1),
        "median_length": round(s.median_length, 1),
        "born_inside": s.born_inside,
        "died_inside": s.died_inside,
        "track_ms_p50": round(float(np.median(times)), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--score", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not (VIDEO.is_file() and MODEL.is_file()):
        print(f"shared data not found: {VIDEO} / {MODEL}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    detections = detect(args.frames, args.score, args.threads)
    print(f"{len(detections)} frames detected in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    rows = {name: evaluate(detections, cfg) for name, cfg in CONFIGS.items()}
    keys = list(next(iter(rows.values())))
    print("| tracker | " + " | ".join(keys) + " |")
    print("| --- | " + " | ".join("---:" for _ in keys) + " |")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(str(row[k]) for k in keys) + " |")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
