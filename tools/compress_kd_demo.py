"""Distillation when labels are scarce: the experiment behind docs/benchmarks.md, "Compression".

Generates three draws of a 10-class image-folder dataset (5 shapes x 2 colour families on noisy
48x48 backgrounds): ``big`` (the teacher's data), ``small`` (the student's labelled data) and
``unl`` (images whose labels are dropped). Trains the teacher with ``edgekit compress --recipe
train`` (MobileNetV2 1.0, 48 px), then per seed two MobileNetV2 0.35 students at 32 px for the same
number of optimizer steps: hard labels on ``small``, and distillation from the teacher's exported
``.tflite`` on ``small`` + ``unl`` (teacher outputs cached on disk). Prints top-1 on ``small``'s
validation split and on ``big``'s validation split (the larger test set).

    .venv/bin/python tools/compress_kd_demo.py --out /tmp/kd                # about 25 min on 2 cores
    .venv/bin/python tools/compress_kd_demo.py --out /tmp/kd --seeds 0 --teacher-epochs 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

SHAPES = ("square", "disc", "triangle", "cross", "ring")
SIZE = 48


def generate(out: Path, per_class: int, seed: int) -> Path:
    """Write ``out/<shape>_<warm|cool>/<n>.png``; returns ``out``."""
    import cv2

    rng = np.random.default_rng(seed)

    def colour(warm: bool) -> tuple[int, ...]:
        h = rng.uniform(0, 30) if warm else rng.uniform(90, 130)
        hsv = np.uint8([[[h, rng.uniform(120, 255), rng.uniform(120, 255)]]])
        return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])

    for shape in SHAPES:
        for warm in (True, False):
            folder = out / f"{shape}_{'warm' if warm else 'cool'}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                base = rng.integers(0, 256, 3)[None, None] * rng.uniform(0.2, 0.6)
                img = np.clip(base + rng.normal(0, 12, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
                for _ in range(rng.integers(0, 2)):
                    p = [int(v) for v in rng.integers(0, SIZE, 4)]
                    line = tuple(int(v) for v in rng.integers(0, 256, 3))
                    cv2.line(img, (p[0], p[1]), (p[2], p[3]), line, 1)
                c, r = colour(warm), int(rng.integers(10, 17))
                cx, cy = (int(v) for v in rng.integers(r + 2, SIZE - r - 2, 2))
                if shape == "square":
                    cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), c, -1)
                elif shape == "disc":
                    cv2.circle(img, (cx, cy), r, c, -1)
                elif shape == "triangle":
                    pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
                    cv2.fillPoly(img, [pts], c)
                elif shape == "cross":
                    cv2.rectangle(img, (cx - r, cy - r // 3), (cx + r, cy + r // 3), c, -1)
                    cv2.rectangle(img, (cx - r // 3, cy - r), (cx + r // 3, cy + r), c, -1)
                else:
                    cv2.circle(img, (cx, cy), r, c, max(2, r // 3))
                cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--teacher-epochs", type=int, default=8)
    ap.add_argument("--kd-epochs", type=int, default=10)
    args = ap.parse_args()

    import keras

    from edgekit.compress.distill import (
        ClassifyData,
        accuracy,
        load_classify_data,
        teacher_targets,
        train_classifier,
    )
    from edgekit.compress.recipes import CompressConfig, parse_recipe, run_recipe
    from edgekit.compress.teacher import TeacherCache, TFLiteTeacher
    from edgekit.zoo.registry import create_model, get_entry

    out = args.out
    big = generate(out / "big", 120, 3)
    small = generate(out / "small", 24, 4)
    unl = generate(out / "unl", 80, 5)
    teacher_dir = out / "teacher"
    run_recipe(
        CompressConfig(
            student="mobilenet_v2", data=big, stages=parse_recipe("train"), out=teacher_dir,
            epochs=args.teacher_epochs, input_size=48, width=1.0, bench_runs=20,
        )
    )  # fmt: skip
    teacher = TFLiteTeacher(teacher_dir / "00_train.tflite", threads=1)
    cache = TeacherCache(out / "teacher_cache")

    spec = get_entry("mobilenet_v2").spec(create_model("mobilenet_v2", 10, 32, 0.35))
    labelled = load_classify_data(small, spec, split="train", flip=True)
    unlabelled = load_classify_data(unl, spec, split="train", flip=True)
    unlabelled = dataclasses.replace(unlabelled, y=np.full_like(unlabelled.y, -1))
    both = ClassifyData(
        np.concatenate([labelled.x, unlabelled.x]),
        np.concatenate([labelled.y, unlabelled.y]),
        labelled.paths + unlabelled.paths,
        np.concatenate([labelled.flipped, unlabelled.flipped]),
        labelled.class_names,
    )
    val = load_classify_data(small, spec, split="val")
    test = load_classify_data(big, spec, split="val")
    logits = teacher_targets(teacher, both, cache)
    steps = args.kd_epochs * int(np.ceil(len(both) / 32))
    hard_epochs = round(steps / np.ceil(len(labelled) / 32))
    t_test = float((teacher_targets(teacher, test, cache).argmax(1) == test.y).mean())
    print(f"teacher top-1 on the test split: {t_test:.3f}; {steps} steps per student")
    res: dict[str, list[float]] = {k: [] for k in ("hard_val", "hard_test", "kd_val", "kd_test")}
    for seed in (int(s) for s in args.seeds.split(",")):
        for mode in ("hard", "kd"):
            keras.utils.set_random_seed(seed)
            m = create_model("mobilenet_v2", 10, 32, 0.35)
            if mode == "kd":
                train_classifier(m, both, teacher_logits=logits, epochs=args.kd_epochs, seed=seed,
                                 alpha=0.9, temperature=4.0, learning_rate=2e-3)  # fmt: skip
            else:
                train_classifier(m, labelled, epochs=hard_epochs, seed=seed, learning_rate=2e-3)
            res[f"{mode}_val"].append(accuracy(m, val))
            res[f"{mode}_test"].append(accuracy(m, test))
            print(
                seed,
                mode,
                f"val {res[f'{mode}_val'][-1]:.3f}",
                f"test {res[f'{mode}_test'][-1]:.3f}",
            )
    print(json.dumps({"mean": {k: float(np.mean(v)) for k, v in res.items()}, "runs": res}))


if __name__ == "__main__":
    main()
