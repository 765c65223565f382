"""``edgekit import MODEL.tflite -o model.keras``: a trainable float Keras model from a TFLite one.

The graph is translated op by op (:mod:`edgekit.zoo.tflite_graph`) up to where a model family's
fixed post-processing begins; that tail becomes edgekit's own again:

- **SSD** (``TFLite_Detection_PostProcess``): the box encodings and the class logits before the
  score activation become the outputs ``box_encodings`` ``[1, A, 4]`` and ``class_logits``
  ``[1, A, C+1]`` of an ``ssd_raw`` model (the zoo's SSDLite layout); the op's box-coder scales
  are read from its options and its anchor constant is matched against the TF Object Detection
  API generator (:func:`edgekit.core.anchors.ssd_anchors`), so the spec carries the generator's
  arguments and the model can be trained at another input size. ``edgekit export --nms`` puts
  the post-process op back.
- **MoveNet** (output ``[1, 1, 17, 3]`` behind an ARG_MAX/GATHER_ND tail): the four heads
  (centre heatmap, keypoint regression, keypoint heatmaps, offsets) become the zoo pose model's
  raw outputs, and :func:`edgekit.zoo.pose.add_movenet_decode` replaces the tail.
- anything else (classifiers): every output is translated as it is.

Weights are dequantized; the spec (task, labels, keypoints, resize mode) comes from the runtime's
reading of the original, and the input is the original input tensor's real value, so
``spec.normalization`` feeds the float model what the runtime feeds the original.
:func:`agreement` measures how far the imported model is from the original on real images.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.flatbuffer import SubgraphInfo, TensorInfo, TFLiteGraph, read_tflite
from edgekit.core.types import ModelSpec
from edgekit.errors import ModelLoadError, UnsupportedModelError
from edgekit.zoo.tflite_graph import producers, translate_graph

__all__ = [
    "Agreement",
    "ImportedModel",
    "OutputAgreement",
    "agreement",
    "import_tflite",
    "match_anchor_generator",
    "save_imported",
]

SSD_POSTPROCESS = "TFLite_Detection_PostProcess"
SSD_OUTPUTS = ("box_encodings", "class_logits")
POSE_SURE = 0.3
_POSTPROCESS_KEYS = ("max_detections", "nms_score_threshold", "nms_iou_threshold",
                     "use_regular_nms", "detections_per_class")  # fmt: skip


@dataclass(frozen=True)
class ImportedModel:
    """An imported model: ``model`` (deployable: decoded for MoveNet), ``raw`` (the translated
    heads: what training fits, what :func:`agreement` compares), its spec and provenance."""

    model: Any
    raw: Any
    spec: ModelSpec
    source: Path
    family: str  # "ssd", "movenet" or "plain"
    cut: tuple[int, ...]  # original tensor indices that ``raw``'s outputs reproduce
    translated_ops: dict[str, int] = field(default_factory=dict)
    replaced_ops: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """Two lines: what was translated and what edgekit's decoder replaced."""
        ops = ", ".join(f"{k} {v}" for k, v in self.translated_ops.items())
        tail = ", ".join(f"{k} {v}" for k, v in self.replaced_ops.items()) or "nothing"
        return (
            f"{self.source.name}: {self.family} ({self.spec.task}/{self.spec.decoder}), "
            f"{sum(self.translated_ops.values())} ops translated ({ops})\n"
            f"post-processing replaced by edgekit's {self.spec.decoder} decoder: {tail}"
        )


# --------------------------------------------------------------------------- family tails


def _ssd_cut(graph: TFLiteGraph) -> tuple[list[int], dict[str, Any]] | None:
    """(box encodings, class logits) tensors and decoder params of an SSD post-process model."""
    sub = graph.main
    ops = [op for op in sub.operators if op.op == SSD_POSTPROCESS]
    if not ops:
        return None
    op = ops[0]
    if len(op.inputs) < 3:
        raise UnsupportedModelError(f"{SSD_POSTPROCESS} has {len(op.inputs)} inputs, expected 3")
    boxes, scores, anchors_t = op.inputs[:3]
    made_by = producers(sub)
    activation, logits = None, scores
    before = made_by.get(scores)
    if before is not None and before.op in ("LOGISTIC", "SOFTMAX"):
        activation = "sigmoid" if before.op == "LOGISTIC" else "softmax"
        logits = before.inputs[0]
    anchors = _real(graph, sub.tensors[anchors_t])
    if anchors is None or anchors.ndim != 2 or anchors.shape[1] != 4:
        raise UnsupportedModelError(f"{SSD_POSTPROCESS}: the anchors are not a constant [A, 4]")
    opts = _flexbuffer_map(op.custom_options)
    scales = [float(opts.get(k, d)) for k, d in
              (("y_scale", 10.0), ("x_scale", 10.0), ("h_scale", 5.0), ("w_scale", 5.0))]  # fmt: skip
    num_cols = int(sub.tensors[scores].shape[-1])
    h, w = (int(v) for v in sub.tensors[sub.inputs[0]].shape[1:3])
    q = sub.tensors[anchors_t].quantization
    tol = max(1e-4, float(q.scale[0]) if q is not None and q.scale else 0.0)
    generator = match_anchor_generator((h, w), anchors, tolerance=tol)
    params: dict[str, Any] = {
        "anchors": generator[0] if generator is not None else anchors.round(6).tolist(),
        "feature_stride": generator[1] if generator is not None else None,
        "num_anchors": int(anchors.shape[0]),
        "scales": scales,
        "has_background": True,  # the op always skips column 0
        "scores_are_logits": activation is not None,
        "activation": activation or "sigmoid",
        "num_classes": num_cols - 1,
        "output_names": list(SSD_OUTPUTS),
        "original_postprocess": {k: opts[k] for k in _POSTPROCESS_KEYS if k in opts},
    }
    return [boxes, logits], params


def match_anchor_generator(
    input_size: tuple[int, int], anchors: np.ndarray, *, tolerance: float = 1e-4
) -> tuple[dict[str, Any], int] | None:
    """The :func:`~edgekit.core.anchors.ssd_anchors` keyword arguments that reproduce
    ``anchors`` ``(A, 4)`` (cy, cx, h, w) within ``tolerance`` and the first feature map's
    stride, or None (TF OD API layouts: 1..8 feature maps from stride 8, 16 or 32, default
    scales and aspect ratios)."""
    from edgekit.core.anchors import DEFAULT_ASPECT_RATIOS, ssd_anchors, ssd_feature_sizes

    for num_layers in range(1, 9):
        for first_stride in (16, 8, 32):
            for reduce in (True, False):
                kwargs = {
                    "input_size": list(input_size),
                    "feature_sizes": [
                        list(s) for s in ssd_feature_sizes(input_size, num_layers, first_stride)
                    ],
                    "min_scale": 0.2,
                    "max_scale": 0.95,
                    "aspect_ratios": list(DEFAULT_ASPECT_RATIOS),
                    "interpolated_scale_aspect_ratio": 1.0,
                    "reduce_boxes_in_lowest_layer": reduce,
                }
                ref = ssd_anchors(**kwargs)
                if ref.shape == anchors.shape and np.abs(ref - anchors).max() <= tolerance:
                    return kwargs, first_stride
    return None


def _ancestors(sub: SubgraphInfo, tensor: int) -> set[int]:
    made_by = producers(sub)
    seen: set[int] = set()
    stack = [tensor]
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        op = made_by.get(t)
        if op is not None:
            stack.extend(i for i in op.inputs if i >= 0)
    return seen


def _meets_keypoint_peaks(graph: TFLiteGraph, start: int, heat: int) -> bool | None:
    """Whether the first tail op that combines ``start`` with another (non-constant) tensor
    takes that tensor from the keypoint heatmaps (MoveNet's offsets, read at the keypoint
    peaks) or not (the regression, read at the centre peak). None when nothing combines it."""
    sub = graph.main
    users: dict[int, list[Any]] = {}
    for op in sub.operators:
        for t in op.inputs:
            users.setdefault(t, []).append(op)
    derived, frontier = {start}, [start]
    while frontier:
        for op in users.get(frontier.pop(), []):
            others = [
                i for i in op.inputs
                if i >= 0 and i not in derived and graph.constant(sub.tensors[i]) is None
            ]  # fmt: skip
            if others:
                return any(heat in _ancestors(sub, o) for o in others)
            new = [t for t in op.outputs if t not in derived]
            derived.update(new)
            frontier.extend(new)
    return None


def _movenet_cut(graph: TFLiteGraph) -> list[int] | None:
    """The four head tensors (centre, regression, heatmaps, offsets) under a MoveNet decode:
    Google's (ARG_MAX + GATHER_ND) or edgekit's own (ARG_MAX + GATHER; before 2026-12 ARG_MAX +
    ONE_HOT + SUM)."""
    sub = graph.main
    outs = [sub.tensors[i].shape for i in sub.outputs]
    if len(outs) != 1 or len(outs[0]) != 4 or outs[0][:2] != (1, 1) or outs[0][3] != 3:
        return None
    if not any(op.op == "ARG_MAX" for op in sub.operators):
        return None
    k = int(outs[0][2])
    sigmoids = [op.outputs[0] for op in sub.operators if op.op == "LOGISTIC"]
    center = [t for t in sigmoids if sub.tensors[t].shape[-1] == 1]
    heat = [t for t in sigmoids if sub.tensors[t].shape[-1] == k]
    maps = [
        op.outputs[0]
        for op in sub.operators
        if op.op == "CONV_2D"
        and len(sub.tensors[op.outputs[0]].shape) == 4
        and sub.tensors[op.outputs[0]].shape[-1] == 2 * k
    ]
    if len(center) != 1 or len(heat) != 1 or len(maps) != 2:
        raise UnsupportedModelError(
            "a MoveNet-like output [1, 1, K, 3], but not the four heads edgekit knows "
            f"(found {len(center)} centre and {len(heat)} keypoint heatmaps, "
            f"{len(maps)} [1, H, W, 2K] convolution outputs)"
        )
    at_peaks = {m: _meets_keypoint_peaks(graph, m, heat[0]) for m in maps}
    regression = [m for m, v in at_peaks.items() if v is False]
    offsets = [m for m, v in at_peaks.items() if v is True]
    if len(regression) != 1 or len(offsets) != 1:
        raise UnsupportedModelError("cannot tell MoveNet's regression head from its offsets head")
    return [center[0], regression[0], heat[0], offsets[0]]


# --------------------------------------------------------------------------- import


def _real(graph: TFLiteGraph, t: TensorInfo) -> np.ndarray | None:
    from edgekit.zoo.tflite_graph import _dequantized

    return _dequantized(graph, t)


def _flexbuffer_map(data: bytes) -> dict[str, Any]:
    """A custom op's FlexBuffer options as a dict ({} when absent or unreadable)."""
    if not data:
        return {}
    try:
        from flatbuffers import flexbuffers

        value = flexbuffers.Loads(bytes(data))
    except Exception:  # malformed options: fall back to the documented defaults
        return {}
    return dict(value) if isinstance(value, dict) else {}


def _runtime_spec(path: Path) -> ModelSpec:
    from edgekit.runtime.model import Model

    return Model.load(path, threads=1).spec


def import_tflite(path: str | os.PathLike[str], *, name: str | None = None) -> ImportedModel:
    """Translate ``path`` into a float Keras model (module docstring).

    Raises :class:`ModelLoadError` for a file that is not a model and
    :class:`UnsupportedModelError` naming the first operator that cannot be imported.
    """
    from edgekit import __version__

    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"{p}: cannot read ({exc.strerror or exc})") from None
    try:
        graph = read_tflite(data)
    except ValueError as exc:
        raise ModelLoadError(f"{p}: {exc}") from None
    if graph.contains_edgetpu_ops:
        raise UnsupportedModelError(
            f"{p}: compiled for the Edge TPU; import the CPU .tflite it was compiled from"
        )
    base = _runtime_spec(p)
    model_name = name or _keras_name(p.stem)
    sub = graph.main
    family, params = "plain", dict(base.decoder_params)
    ssd = _ssd_cut(graph)
    movenet = None if ssd else _movenet_cut(graph)
    if ssd is not None:
        family, (cut, params) = "ssd", ssd
        names: Sequence[str] = SSD_OUTPUTS
        decoder = "ssd_raw"
    elif movenet is not None:
        from edgekit.zoo.pose import RAW_OUTPUTS

        family, cut, names, decoder = "movenet", movenet, RAW_OUTPUTS, "movenet"
        params = {"num_keypoints": int(sub.tensors[movenet[2]].shape[-1]), "output_stride":
                  round(base.input_size[0] / sub.tensors[movenet[2]].shape[1])}  # fmt: skip
    else:
        cut, names, decoder = list(sub.outputs), (), base.decoder
    try:
        raw_name = f"{model_name}_raw" if family == "movenet" else model_name
        raw = translate_graph(graph, cut, output_names=names, name=raw_name)
    except UnsupportedModelError as exc:
        raise UnsupportedModelError(f"{p}: {exc}") from None
    model = raw
    if family == "movenet":
        from edgekit.zoo.pose import add_movenet_decode

        model = add_movenet_decode(raw)
        params["output_names"] = ["keypoints"]
    translated = Counter(op.op for op in _ops_for(sub, cut))
    replaced = Counter(op.op for op in sub.operators) - translated
    digest = hashlib.sha256(data).hexdigest()
    params["imported_from"] = {"file": p.name, "sha256": digest}
    spec = dataclasses.replace(
        base,
        decoder=decoder,
        input_dtype="float32",
        normalization=_input_normalization(sub.tensors[sub.inputs[0]], base),
        decoder_params=params,
        name=model_name,
        version=__version__,
    )
    return ImportedModel(
        model=model,
        raw=raw,
        spec=spec,
        source=p,
        family=family,
        cut=tuple(int(t) for t in cut),
        translated_ops=dict(translated.most_common()),
        replaced_ops=dict(replaced.most_common()),
    )


def _ops_for(sub: SubgraphInfo, outputs: Sequence[int]) -> list[Any]:
    from edgekit.zoo.tflite_graph import _needed_ops

    return _needed_ops(sub, outputs)


def _keras_name(stem: str) -> str:
    import re

    name = re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_") or "imported"
    return name if name[0].isalpha() else f"m_{name}"


def _input_normalization(t: TensorInfo, base: ModelSpec) -> tuple[float, float]:
    """(mean, std) that turns pixels into the real value of the original's input tensor."""
    q = t.quantization
    if t.dtype == "uint8" and q is not None and q.scale and q.scale[0]:
        return (float(q.zero_point[0] if q.zero_point else 0), 1.0 / float(q.scale[0]))
    return base.normalization


def save_imported(imported: ImportedModel, out: str | os.PathLike[str]) -> Path:
    """Write ``out`` (``.keras``) and ``out``'s ``.spec.json`` next to it (what ``edgekit
    export``, ``train --model`` and ``compress --student`` read)."""
    from edgekit.zoo.checkpoint import save_checkpoint_spec

    path = Path(out)
    if path.suffix != ".keras":
        path = path.with_suffix(".keras")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.keras")
    imported.model.save(tmp)
    os.replace(tmp, path)
    save_checkpoint_spec(path, imported.spec)
    return path


# --------------------------------------------------------------------------- agreement


@dataclass(frozen=True)
class OutputAgreement:
    """One raw output, imported float vs the original's dequantized tensor, over all images,
    in units of the original tensor's quantization step (its scale; ``unit`` "steps"), or
    absolute for a float tensor (``unit`` "absolute", ``step`` 0)."""

    name: str
    shape: tuple[int, ...]
    step: float
    unit: str
    rmse: float
    p99: float
    max: float


@dataclass(frozen=True)
class Agreement:
    """:func:`agreement`'s result: per raw output, and the task-level comparison."""

    images: int
    outputs: tuple[OutputAgreement, ...]
    task: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "outputs": [dataclasses.asdict(o) for o in self.outputs],
            "task": self.task,
        }

    def lines(self) -> list[str]:
        out = [f"agreement with the original on {self.images} image(s):"]
        for o in self.outputs:
            unit = f"quantization steps (step {o.step:.4g})" if o.step else "(float tensor)"
            out.append(
                f"  {o.name[:60]} {list(o.shape)}: RMSE {o.rmse:.3g}, p99 {o.p99:.3g}, "
                f"max {o.max:.3g} {unit}"
            )
        out.append("  " + ", ".join(f"{k} {v:.3f}" for k, v in self.task.items()))
        return out


def agreement(imported: ImportedModel, images: Sequence[np.ndarray]) -> Agreement:
    """Run the original (integer, every intermediate kept) and the imported float model on the
    same preprocessed ``images`` (RGB uint8) and compare the raw outputs and the decoded results.

    Task figures: detection, the fraction of the original's detections (score >= 0.3) that the
    imported model finds (same class, IoU >= 0.5) and the mean score difference of those;
    pose, over the original's keypoints scoring >= ``POSE_SURE`` (where a person is visible:
    elsewhere the argmax of a flat heatmap is arbitrary), the mean distance (fraction of the
    input side) and the fraction within 0.02 (one heatmap cell of a 192² MoveNet), also for
    the original's own heads decoded in float (``original_heads_*``: what its integer decode
    tail alone moves).
    """
    from edgekit.runtime.interpreter import debug_interpreter
    from edgekit.runtime.model import Model

    if not images:
        raise UnsupportedModelError("agreement needs at least one image")
    original = Model.load(imported.source, threads=1)
    dbg = debug_interpreter(imported.source)
    inp = dbg.get_input_details()[0]
    details = {d["index"]: d for d in dbg.get_tensor_details()}
    diffs: list[list[np.ndarray]] = [[] for _ in imported.cut]
    task: dict[str, list[float]] = {}
    for image in images:
        tensor, _ = original.preprocess(image)
        dbg.set_tensor(inp["index"], tensor)
        dbg.invoke()
        real = _tensor_real(tensor, inp)
        outs = imported.raw(real[None] if real.ndim == 3 else real, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        heads = []
        for k, (t, y) in enumerate(zip(imported.cut, outs, strict=True)):
            ref = _tensor_real(dbg.get_tensor(t), details[t])
            heads.append(ref)
            diffs[k].append(np.asarray(y, np.float32).reshape(ref.shape) - ref)
        if imported.family == "movenet":
            out = dbg.get_output_details()[0]
            _pose_figures(
                imported, real, heads, _tensor_real(dbg.get_tensor(out["index"]), out), task
            )
        else:
            _task_figures(imported, original, image, task)
    outputs = []
    for t, d in zip(imported.cut, diffs, strict=True):
        det = details[t]
        step = float(det["quantization"][0])
        a = np.abs(np.concatenate([x.ravel() for x in d])) / (step or 1.0)
        outputs.append(
            OutputAgreement(
                name=str(det["name"]),
                shape=tuple(int(v) for v in det["shape"]),
                step=step,
                unit="steps" if step else "absolute",
                rmse=float(np.sqrt(np.mean(a**2))),
                p99=float(np.percentile(a, 99)),
                max=float(a.max()),
            )
        )
    return Agreement(len(images), tuple(outputs), {k: float(np.mean(v)) for k, v in task.items()})


def _tensor_real(q: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    arr = np.asarray(q)
    if scale and arr.dtype.kind in "iu":
        return (arr.astype(np.float32) - np.float32(zero)) * np.float32(scale)
    return arr.astype(np.float32)


def _pose_figures(
    imported: ImportedModel,
    real: np.ndarray,
    heads: list[np.ndarray],
    original: np.ndarray,
    acc: dict[str, list[float]],
) -> None:
    """Keypoints (normalized to the model input) of the imported model, and of the original's
    own heads decoded by edgekit's float decoder, against the original's output: the second
    shows how much of the difference is the original's integer decode tail alone."""
    from edgekit.zoo.pose import MoveNetDecode

    ref = original.reshape(-1, 3)
    sure = ref[:, 2] >= POSE_SURE
    mine = np.asarray(imported.model(real, training=False)).reshape(-1, 3)
    tail = np.asarray(MoveNetDecode(len(ref))(*[h.astype(np.float32) for h in heads])).reshape(
        -1, 3
    )
    for key, pts in (("", mine), ("original_heads_", tail)):
        dist = np.linalg.norm(pts[sure, :2] - ref[sure, :2], axis=1)
        acc.setdefault(f"{key}keypoint_distance", []).extend(dist.tolist())
        acc.setdefault(f"{key}keypoints_within_0.02", []).extend((dist <= 0.02).tolist())


def _task_figures(
    imported: ImportedModel, original: Any, image: np.ndarray, acc: dict[str, list[float]]
) -> None:
    from edgekit.core.boxes import iou as iou_matrix
    from edgekit.zoo.keras_runtime import runtime_model

    ref = original.predict(image, score_threshold=0.3 if imported.spec.task == "detect" else 0.0)
    mine = runtime_model(imported.model, imported.spec).predict(
        image, score_threshold=0.05 if imported.spec.task == "detect" else 0.0
    )
    if imported.spec.task == "detect":
        for d in ref.detections:
            same = [m for m in mine.detections if m.class_id == d.class_id]
            ious = iou_matrix(np.array([d.box]), np.array([m.box for m in same])) if same else None
            j = int(np.argmax(ious[0])) if ious is not None else -1
            hit = ious is not None and ious[0, j] >= 0.5
            acc.setdefault("detections_found", []).append(float(hit))
            if hit:
                acc.setdefault("score_diff", []).append(abs(same[j].score - d.score))
    elif imported.spec.task == "classify" and ref.classes and mine.classes:
        acc.setdefault("top1_agreement", []).append(
            float(ref.classes[0].class_id == mine.classes[0].class_id)
        )


def spec_json(spec: ModelSpec) -> str:
    """The spec as indented JSON (for ``edgekit import --json``)."""
    return json.dumps(json.loads(spec.to_json()), indent=2)
