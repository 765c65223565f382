"""Input pipeline alone vs training steps, images/s, for one detector on a dataset (CPU or GPU).

    .venv/bin/python tools/bench_train.py ../shared/data/coco128 --model ssdlite_mobilenet_v2 \
        --img 192 --width 0.35 --batch 16

The pipeline is timed with ``edgekit.data.pipeline.measure_throughput`` (augmentation on, with
and without the model's target encoder); training runs ``edgekit.train.train`` for three epochs
and reports the median step time over epochs 2-3 (the first epoch includes graph tracing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import keras

from edgekit.core.anchors import ssd_anchors
from edgekit.data import split_dataset
from edgekit.data.encode import make_encode_fn
from edgekit.data.load import load_dataset
from edgekit.data.pipeline import PipelineConfig, make_pipeline, measure_throughput
from edgekit.train import TrainConfig, train
from edgekit.zoo.registry import get_entry


class StepTimer(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self._t = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self._t = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--model", default="ssdlite_mobilenet_v2")
    ap.add_argument("--img", type=int, default=192)
    ap.add_argument("--width", type=float, default=0.35)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()

    entry = get_entry(args.model)
    ds = load_dataset(args.data)
    train_ds, _ = split_dataset(ds, 0.2, 0)
    spec = entry.spec(args.img, labels=ds.class_names)
    if entry.decoder == "ssd_raw":
        p = spec.decoder_params
        enc = make_encode_fn("ssd", anchors=ssd_anchors(**p["anchors"]), scales=p["scales"])
    else:
        enc = make_encode_fn(
            "yolo", input_size=(args.img, args.img), num_classes=len(ds.class_names)
        )
    result: dict[str, float] = {}
    for name, fn in (("pipeline", None), ("pipeline+encode", enc)):
        cfg = PipelineConfig(batch_size=args.batch, training=True, repeat=True, seed=0)
        m = measure_throughput(make_pipeline(train_ds, spec, cfg, encode_fn=fn), max_batches=22)
        result[f"{name} images/s"] = m["images_per_s"]
        result[f"{name} images/cpu-s"] = m["images_per_cpu_s"]
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        res = train(
            TrainConfig(
                model=args.model, data=args.data, epochs=3, batch=args.batch, img=args.img,
                width=args.width, out=Path(tmp) / "run", progress="none", tensorboard=False,
            ),
            callbacks=[timer],
        )  # fmt: skip
    steps = len(timer.times) // 3
    step = statistics.median(timer.times[steps + 1 :])
    result["train step s (median)"] = step
    result["train images/s"] = args.batch / step
    result["first epoch s (tracing)"] = res.history[0]["seconds"]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
