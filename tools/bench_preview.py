"""What the live web preview costs the loop: FPS and sink write time with and without viewers.

Runs SSD MobileNet V1 (``../shared/data/models``, 1 thread) over the first frames of
``../shared/data/video/vtest.avi`` with ``edgekit.loop.run`` four times, interleaved: no
preview; a preview nobody watches; one viewer reading the MJPEG stream; one viewer that never
reads (its socket buffers fill). Prints frames/s, the loop's ``write`` p50/p99 (all sinks),
``render`` p50 (drawing for the preview), JPEG encodes, and frames the reading viewer received.

    .venv/bin/python tools/bench_preview.py                  # 200 frames
    .venv/bin/python tools/bench_preview.py --frames 100 --rounds 1
"""

from __future__ import annotations

import argparse
import itertools
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from edgekit.io.sources import open_source
from edgekit.loop import run
from edgekit.runtime.model import Model
from edgekit.runtime.step import make_step
from edgekit.serve import PreviewSink, encode_jpeg

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
VIDEO = SHARED / "video" / "vtest.avi"
MODEL = SHARED / "models" / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
MODES = ("no preview", "preview, no viewer", "1 viewer reading", "1 viewer stuck")


def _reader(url: str, counter: list[int], stop: threading.Event) -> None:
    with urllib.request.urlopen(url, timeout=30) as response:
        while not stop.is_set():
            line = response.readline()
            if not line:
                return
            if line.startswith(b"--edgekitframe"):
                counter[0] += 1


def once(mode: str, step, frames: int) -> dict:
    sinks, stop, counter, extra = [], threading.Event(), [0], []
    sink = None
    if mode != "no preview":
        sink = PreviewSink("127.0.0.1", 0)
        sinks.append(sink)
        url = f"http://127.0.0.1:{sink.port}/stream.mjpg"
        if mode == "1 viewer reading":
            extra.append(threading.Thread(target=_reader, args=(url, counter, stop)))
            extra[0].start()
        elif mode == "1 viewer stuck":
            stuck = socket.create_connection(("127.0.0.1", sink.port))
            stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stuck.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
            extra.append(stuck)
        while mode.startswith("1 viewer") and sink.hub.clients < 1:
            time.sleep(0.01)
    source = open_source(str(VIDEO))
    stats = run(source, step, sinks, max_frames=frames, install_signal_handlers=False)
    stop.set()
    for item in extra:
        if isinstance(item, threading.Thread):
            item.join(10)
        else:
            item.close()
    write = stats.stages["write"]
    render = stats.stages.get("render")
    return {
        "fps": stats.fps,
        "write_p50": write.p50_ms,
        "write_p99": write.p99_ms,
        "render_p50": render.p50_ms if render else float("nan"),
        "encoded": sink.encoded if sink else 0,
        "received": counter[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if not (VIDEO.is_file() and MODEL.is_file()):
        print(f"shared data not found: {VIDEO} / {MODEL}", file=sys.stderr)
        return 2
    step = make_step(Model.load(MODEL, threads=1), score_threshold=0.5)
    source = open_source(str(VIDEO))
    frame = next(iter(source))
    source.close()
    times = []
    for _ in range(100):
        t0 = time.perf_counter()
        encode_jpeg(frame.image, 80)
        times.append((time.perf_counter() - t0) * 1e3)
    print(
        f"JPEG encode of a {frame.width}x{frame.height} frame at quality 80: "
        f"p50 {np.median(times):.2f} ms, {len(encode_jpeg(frame.image, 80)) // 1024} KiB"
    )
    results: dict[str, list[dict]] = {m: [] for m in MODES}
    for _, mode in itertools.product(range(args.rounds), MODES):
        results[mode].append(once(mode, step, args.frames))
    keys = ("fps", "write_p50", "write_p99", "render_p50", "encoded", "received")
    print("| mode | " + " | ".join(keys) + " |")
    print("| --- | " + " | ".join("---:" for _ in keys) + " |")
    for mode, rows in results.items():
        cells = [f"{np.median([r[k] for r in rows]):.2f}" for k in keys[:4]]
        cells += [str(int(np.median([r[k] for r in rows]))) for k in keys[4:]]
        print(f"| {mode} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
