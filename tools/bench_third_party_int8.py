"""A YOLO-style int8 model with a calibrated input vs its float twin, through edgekit's runtime.

Builds the corpus' colour-blob YOLO head (``tests/model_corpus.py``: hand-set weights, output
``[1, 4+3, 2100]`` at 320x320, strides 8/16/32, float domain 0..1) and converts it to float32
and to full int8 calibrated on real photos (``../shared/data/coco128``, the first 20 images,
letterboxed) the way third-party exporters do:

- ``i8_odd``: int8 input calibrated over [-2.118, 2.64] (what ImageNet mean/std calibration
  gives a 0..1 input: scale 0.0187, zero point -14 — the case of issue #12);
- ``u8_odd``: uint8 input calibrated over [-0.25, 1.1] (zero point 47);
- ``i8_pixel``: int8 input calibrated over exactly 0..1 (pixels - 128: the control).

Then runs each through ``Model.load(path).predict`` on the other 80 images and scores its
detections against the float twin's (score >= 0.25 as reference boxes): AP50 (all-point, mean
over classes), recall and precision at score 0.5 (same class, IoU >= 0.5) and the mean IoU of
matched boxes. Two more rows per variant, computed here without edgekit's input handling:
``ref`` feeds the same int8 file pixels / 255 quantized with its own scale and zero point by
the textbook formula (a direct reference decode: what edgekit should match exactly); ``floor``
feeds the float twin its input rounded to that grid (what the input's resolution alone costs). Run it with the code under test on the path; the models are kept in ``--models``
so another checkout can score the very same files:

    .venv/bin/python tools/bench_third_party_int8.py --models /tmp/tp_int8 --json after.json
    git archive <base> | tar -x -C /tmp/base_src
    PYTHONPATH=/tmp/base_src .venv/bin/python tools/bench_third_party_int8.py \\
        --models /tmp/tp_int8 --json before.json                      # same files, old code
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SIZE = 320
CALIB = 20
VARIANTS = ("float", "i8_odd", "u8_odd", "i8_pixel")
GT_SCORE, AT_SCORE, IOU = 0.25, 0.5, 0.5


def read_images(folder: Path) -> list[np.ndarray]:
    import cv2

    out = []
    for path in sorted(folder.glob("*.jpg")):
        image = cv2.imread(str(path))
        if image is not None:
            out.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return out


def build(models: Path, calibration: list[np.ndarray]) -> None:
    """Write the float twin and the int8 variants into ``models`` (needs TensorFlow)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from model_corpus import DOMAINS, to_tflite, yolo_head

    from edgekit.runtime.preprocess import Preprocessor

    letterbox = Preprocessor((SIZE, SIZE), resize_mode="letterbox", fill=114)
    calib = [letterbox(img)[0][0] for img in calibration]
    model = yolo_head(SIZE, 3, (8, 16, 32))
    models.mkdir(parents=True, exist_ok=True)
    for name in VARIANTS:
        (models / f"yolo_{name}.tflite").write_bytes(to_tflite(model, name, calib, DOMAINS["yolo"]))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), xyxy."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-12)


def ap50(reference: list[list], predicted: list[list]) -> float:
    """Mean over classes of all-point AP at IoU 0.5; ``reference``: per image, detections taken
    as ground truth; ``predicted``: per image, scored detections."""
    classes = {d.class_id for dets in reference for d in dets}
    aps = []
    for c in sorted(classes):
        gts = [
            np.array([d.box for d in dets if d.class_id == c]).reshape(-1, 4) for dets in reference
        ]
        n_gt = sum(len(g) for g in gts)
        preds = sorted(
            (
                (d.score, i, d.box)
                for i, dets in enumerate(predicted)
                for d in dets
                if d.class_id == c
            ),
            key=lambda t: -t[0],
        )
        used = [np.zeros(len(g), bool) for g in gts]
        tp = np.zeros(len(preds))
        for k, (_, i, box) in enumerate(preds):
            if len(gts[i]):
                ious = _iou(np.array([box]), gts[i])[0]
                ious[used[i]] = 0.0
                j = int(np.argmax(ious))
                if ious[j] >= IOU:
                    used[i][j], tp[k] = True, 1.0
        if n_gt == 0:
            continue
        cum = np.cumsum(tp)
        recall = cum / n_gt
        precision = cum / np.arange(1, len(tp) + 1)
        r = np.concatenate([[0.0], recall, [recall[-1] if len(recall) else 0.0]])
        p = np.concatenate([[1.0], precision, [0.0]])
        p = np.maximum.accumulate(p[::-1])[::-1]
        aps.append(float(np.sum((r[1:] - r[:-1]) * p[1:])))
    return float(np.mean(aps)) if aps else float("nan")


def agreement(reference: list[list], predicted: list[list]) -> dict[str, float]:
    """Recall/precision at score 0.5 (same class, IoU >= 0.5) and mean IoU of the matches."""
    matched_ref = matched_pred = n_ref = n_pred = 0
    ious: list[float] = []
    for ref, got in zip(reference, predicted, strict=True):
        ref = [d for d in ref if d.score >= AT_SCORE]
        got = [d for d in got if d.score >= AT_SCORE]
        n_ref, n_pred = n_ref + len(ref), n_pred + len(got)
        if not ref or not got:
            continue
        m = _iou(np.array([d.box for d in ref]), np.array([d.box for d in got]))
        same = np.array([[a.class_id == b.class_id for b in got] for a in ref])
        m = np.where(same, m, 0.0)
        best = m.max(axis=1)
        matched_ref += int((best >= IOU).sum())
        matched_pred += int((m.max(axis=0) >= IOU).sum())
        ious += best[best >= IOU].tolist()
    return {
        "recall": matched_ref / n_ref if n_ref else float("nan"),
        "precision": matched_pred / n_pred if n_pred else float("nan"),
        "mean_iou": float(np.mean(ious)) if ious else float("nan"),
        "reference_boxes": n_ref,
        "boxes": n_pred,
    }


def grid_lut(inp: dict) -> np.ndarray:
    """float32 table pixel -> pixel / 255 rounded to the int8/uint8 input grid ``inp``."""
    info = np.iinfo(np.dtype(inp["dtype"]))
    scale, zero_point = inp["scale"], inp["zero_point"]
    q = np.clip(np.rint(np.arange(256) / 255.0 / scale) + zero_point, info.min, info.max)
    return ((q - zero_point) * scale).astype(np.float32)


def textbook_lut(inp: dict) -> np.ndarray:
    """Integer table pixel -> round(pixel / 255 / scale) + zero_point, saturated."""
    dtype = np.dtype(inp["dtype"])
    info = np.iinfo(dtype)
    q = np.rint(np.arange(256) / 255.0 / inp["scale"]) + inp["zero_point"]
    return np.clip(q, info.min, info.max).astype(dtype)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="model folder (built if empty)")
    parser.add_argument("--images", type=Path, default=SHARED / "coco128" / "images")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    import edgekit
    from edgekit.runtime.model import Model

    images = read_images(args.images)
    if len(images) <= CALIB:
        parser.error(f"{args.images}: need more than {CALIB} images")
    if not (args.models / "yolo_float.tflite").is_file():
        build(args.models, images[:CALIB])
    test = images[CALIB:]
    runs = {}
    for name in VARIANTS:
        model = Model.load(args.models / f"yolo_{name}.tflite", threads=1)
        runs[name] = [
            list(model.predict(img, score_threshold=0.001, max_results=100).detections)
            for img in test
        ]
        detail = model.input_details[0]
        runs[name + "_input"] = {
            "dtype": np.dtype(detail["dtype"]).name,
            "scale": float(detail["quantization"][0]),
            "zero_point": int(detail["quantization"][1]),
            "normalization": list(model.spec.normalization),
        }
    floor, direct = {}, {}
    for name in VARIANTS[1:]:
        inp = runs[name + "_input"]
        for out, path, lut in (
            (floor, "yolo_float.tflite", grid_lut(inp)),
            (direct, f"yolo_{name}.tflite", textbook_lut(inp)),
        ):
            model = Model.load(args.models / path, threads=1)
            model.preprocessor = dataclasses.replace(model.preprocessor, lut=lut)
            out[name] = [
                list(model.predict(img, score_threshold=0.001, max_results=100).detections)
                for img in test
            ]
    reference = [[d for d in dets if d.score >= GT_SCORE] for dets in runs["float"]]
    results = {"edgekit": str(Path(edgekit.__file__).parent), "images": len(test), "variants": {}}
    print(f"edgekit from {results['edgekit']}; {len(test)} coco128 images, reference = float twin")
    print(
        f"{'variant':9s} {'input':28s} {'norm':>14s} {'AP50':>6s} {'recall':>7s} {'prec':>6s} {'mIoU':>6s}"
    )
    for name in VARIANTS[1:]:
        inp = runs[name + "_input"]
        q = f"{inp['dtype']} s={inp['scale']:.4g} zp={inp['zero_point']}"
        norm = "({:g}, {:g})".format(*inp["normalization"])
        for key, label, dets, how in (
            (name, name, runs[name], norm),
            (f"{name}_reference", "  ref", direct[name], "x/255, formula"),
            (f"{name}_floor", "  floor", floor[name], "float, grid"),
        ):
            row = {"input": inp, "ap50": ap50(reference, dets), **agreement(reference, dets)}
            results["variants"][key] = row
            print(
                f"{label:9s} {q:28s} {how:>14s} "
                f"{row['ap50']:6.3f} {row['recall']:7.3f} {row['precision']:6.3f} "
                f"{row['mean_iou']:6.3f}"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
