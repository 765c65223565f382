"""PoseNet multi-person decoder (heatmaps + short-range + mid-range offsets).

The algorithm of TF.js ``decodeMultiplePoses`` (PersonLab, Papandreou et al. 2018):

1. part scores are the sigmoid of the heatmap logits; every local maximum (window
   ``2 * local_maximum_radius + 1``) scoring >= ``score_threshold`` is a root candidate;
2. candidates are taken by decreasing score; a root closer than ``nms_radius`` (input pixels) to
   the same part of an already decoded pose is skipped;
3. from the root, the other parts are reached along the skeleton tree, first towards the root of
   the tree (backward mid-range offsets), then away from it (forward ones); each displaced point
   is refined by the short-range offsets of the target part (``refine_steps`` times);
4. a pose scores the mean of its part scores, counting only parts that are not within
   ``nms_radius`` of the same part of a previously decoded pose.

Tensor layout (as produced by the PoseNet models, and used by TF.js and Coral's decoder):
``short_offsets`` (H, W, 2K) = [y of K parts, x of K parts]; ``mid_offsets`` (H, W, 4E) =
[forward y, forward x, backward y, backward x], each E channels in :data:`POSE_CHAIN` order.
Offsets are in input pixels; heatmap cell (i, j) sits at input pixel (i * stride, j * stride).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from edgekit.core.keypoints import keypoints_box
from edgekit.core.types import COCO_KEYPOINT_NAMES, Keypoint, ModelSpec, Pose
from edgekit.errors import UnsupportedModelError
from edgekit.runtime.decoders.common import Decode, Decoder, Outputs, Thresholds, detail_shape

__all__ = ["DECODER", "POSE_CHAIN", "decode", "part_candidates", "resolve_outputs"]


def _k(name: str) -> int:
    return COCO_KEYPOINT_NAMES.index(name)


#: (parent, child) edges of PoseNet's skeleton tree, rooted at the nose; edge id = position.
POSE_CHAIN: tuple[tuple[int, int], ...] = tuple(
    (_k(a), _k(b))
    for a, b in (
        ("nose", "left_eye"),
        ("left_eye", "left_ear"),
        ("nose", "right_eye"),
        ("right_eye", "right_ear"),
        ("nose", "left_shoulder"),
        ("left_shoulder", "left_elbow"),
        ("left_elbow", "left_wrist"),
        ("left_shoulder", "left_hip"),
        ("left_hip", "left_knee"),
        ("left_knee", "left_ankle"),
        ("nose", "right_shoulder"),
        ("right_shoulder", "right_elbow"),
        ("right_elbow", "right_wrist"),
        ("right_shoulder", "right_hip"),
        ("right_hip", "right_knee"),
        ("right_knee", "right_ankle"),
    )
)

T = TypeVar("T")
_BIG = 1e6  # replaces infinite offsets: far away but finite


def _hwc(a: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    while arr.ndim > 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3 or min(arr.shape) == 0:
        raise ValueError(f"PoseNet {name} must be (H, W, C) or (1, H, W, C), got {np.shape(a)}")
    return arr


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return 0.5 * (1.0 + np.tanh(0.5 * x))


def part_candidates(
    scores: np.ndarray, score_threshold: float, local_maximum_radius: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Local maxima of ``scores`` (H, W, K) scoring >= ``score_threshold``.

    A cell is a local maximum when no cell of the same part within the window scores strictly
    more. Returns ``(ys, xs, parts, part_scores)`` sorted by decreasing score (stable).
    """
    h, w, _ = scores.shape
    r = max(int(local_maximum_radius), 0)
    s = np.where(np.isnan(scores), -np.inf, scores)
    padded = np.pad(s, ((r, r), (r, r), (0, 0)), constant_values=-np.inf)
    local_max = np.full_like(s, -np.inf)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            np.maximum(local_max, padded[dy : dy + h, dx : dx + w], out=local_max)
    mask = (s >= score_threshold) & (s >= local_max)
    ys, xs, ks = np.nonzero(mask)
    vals = s[ys, xs, ks]
    order = np.argsort(-vals, kind="stable")
    return ys[order], xs[order], ks[order], vals[order]


def _quiet(fn: Callable[..., T]) -> Callable[..., T]:
    """Run ``fn`` with numpy overflow/invalid warnings silenced (garbage in never spams logs)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with np.errstate(over="ignore", invalid="ignore"):
            return fn(*args, **kwargs)

    return wrapper


@_quiet
def decode(
    heatmaps: np.ndarray,
    short_offsets: np.ndarray,
    mid_offsets: np.ndarray,
    *,
    output_stride: int = 16,
    max_poses: int = 10,
    score_threshold: float = 0.5,
    nms_radius: float = 20.0,
    local_maximum_radius: int = 1,
    refine_steps: int = 2,
    input_size: Sequence[int] | None = None,
    heatmaps_are_logits: bool = True,
    min_pose_score: float = 0.0,
    box_score_threshold: float | None = 0.2,
) -> list[Pose]:
    """Decode PoseNet outputs into poses, keypoints normalized to the model input, best first.

    ``input_size`` (height, width) defaults to ``((H - 1) * stride + 1, (W - 1) * stride + 1)``,
    the PoseNet convention (481x641 input -> 31x41 heatmaps at stride 16).
    """
    hm = _hwc(heatmaps, "heatmaps")
    so = _hwc(short_offsets, "short_offsets")
    mo = _hwc(mid_offsets, "mid_offsets")
    h, w, k = hm.shape
    n_edges = len(POSE_CHAIN)
    if k != len(COCO_KEYPOINT_NAMES):
        raise ValueError(f"PoseNet heatmaps must have {len(COCO_KEYPOINT_NAMES)} parts, got {k}")
    if so.shape != (h, w, 2 * k):
        raise ValueError(f"PoseNet short_offsets must be {(h, w, 2 * k)}, got {so.shape}")
    if mo.shape != (h, w, 4 * n_edges):
        raise ValueError(f"PoseNet mid_offsets must be {(h, w, 4 * n_edges)}, got {mo.shape}")
    stride = float(output_stride)
    if not stride > 0:
        raise ValueError(f"output_stride must be positive, got {output_stride}")
    if input_size is None:
        in_h, in_w = (h - 1) * stride + 1, (w - 1) * stride + 1
    else:
        size = tuple(float(v) for v in input_size)
        if len(size) != 2 or not min(size) > 0:
            raise ValueError(f"input_size must be (height, width) > 0, got {input_size!r}")
        in_h, in_w = size

    scores = _sigmoid(hm) if heatmaps_are_logits else hm
    so = np.nan_to_num(so, nan=0.0, posinf=_BIG, neginf=-_BIG)
    mo = np.nan_to_num(mo, nan=0.0, posinf=_BIG, neginf=-_BIG)
    fwd = (mo[..., :n_edges], mo[..., n_edges : 2 * n_edges])
    bwd = (mo[..., 2 * n_edges : 3 * n_edges], mo[..., 3 * n_edges :])
    safe_scores = np.clip(np.nan_to_num(scores, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)

    def cell(y: float, x: float) -> tuple[int, int]:
        """The heatmap cell nearest to input pixel (y, x) (JS Math.round), clamped to the map."""
        fy, fx = y / stride + 0.5, x / stride + 0.5
        iy = 0 if not fy > 0 else (h - 1 if fy >= h - 1 else int(fy))  # NaN -> 0
        ix = 0 if not fx > 0 else (w - 1 if fx >= w - 1 else int(fx))
        return iy, ix

    def traverse(
        edge: int, src: tuple[float, float], target: int, disp: tuple[np.ndarray, np.ndarray]
    ) -> tuple[tuple[float, float], float]:
        iy, ix = cell(*src)
        point = (src[0] + float(disp[0][iy, ix, edge]), src[1] + float(disp[1][iy, ix, edge]))
        for _ in range(refine_steps):
            iy, ix = cell(*point)
            point = (
                iy * stride + float(so[iy, ix, target]),
                ix * stride + float(so[iy, ix, k + target]),
            )
        iy, ix = cell(*point)
        return point, float(safe_scores[iy, ix, target])

    sq_radius = float(nms_radius) ** 2
    poses_xy: list[np.ndarray] = []  # (K, 2) as (y, x) input pixels
    results: list[tuple[float, np.ndarray, np.ndarray]] = []
    ys, xs, parts, part_scores = part_candidates(scores, score_threshold, local_maximum_radius)
    for y, x, part, root_score in zip(ys, xs, parts, part_scores, strict=True):
        if len(results) >= max_poses:
            break
        root = (y * stride + float(so[y, x, part]), x * stride + float(so[y, x, k + part]))
        if poses_xy:
            prev = np.stack([p[part] for p in poses_xy])
            if (((prev - root) ** 2).sum(-1) <= sq_radius).any():
                continue
        found: dict[int, tuple[tuple[float, float], float]] = {
            int(part): (root, min(float(root_score), 1.0))
        }
        for edge in range(n_edges - 1, -1, -1):
            parent, child = POSE_CHAIN[edge]
            if child in found and parent not in found:
                found[parent] = traverse(edge, found[child][0], parent, bwd)
        for edge in range(n_edges):
            parent, child = POSE_CHAIN[edge]
            if parent in found and child not in found:
                found[child] = traverse(edge, found[parent][0], child, fwd)
        pos = np.array([found[i][0] for i in range(k)], dtype=np.float64)
        kp_scores = np.array([found[i][1] for i in range(k)], dtype=np.float64)
        if poses_xy:
            prev = np.stack(poses_xy)  # (P, K, 2)
            overlapped = (((prev - pos[None]) ** 2).sum(-1) <= sq_radius).any(0)
        else:
            overlapped = np.zeros(k, dtype=bool)
        instance_score = float(kp_scores[~overlapped].sum() / k)
        poses_xy.append(pos)
        results.append((instance_score, pos, kp_scores))

    poses: list[Pose] = []
    for instance_score, pos, kp_scores in results:
        if instance_score < min_pose_score:
            continue
        # Heatmap cells index pixels; a pixel's centre is at index + 0.5 in normalized terms.
        xy = np.stack([(pos[:, 1] + 0.5) / in_w, (pos[:, 0] + 0.5) / in_h], axis=1)
        xy = np.clip(np.nan_to_num(xy, nan=0.0), 0.0, 1.0)
        kps = tuple(
            Keypoint(float(a), float(b), float(s)) for (a, b), s in zip(xy, kp_scores, strict=True)
        )
        box = (
            None
            if box_score_threshold is None
            else keypoints_box(xy, kp_scores, box_score_threshold)
        )
        poses.append(Pose(kps, instance_score, box))
    poses.sort(key=lambda p: -p.score)
    return poses


# --- the decoder: which map is which, and one frame's maps -> poses ---------------------------


def resolve_outputs(outputs: Sequence[dict]) -> dict[str, int]:
    """Positions of PoseNet's heatmaps ``[1,H,W,K]``, short offsets ``[1,H,W,2K]`` and mid
    offsets ``[1,H,W,4(K-1)]`` (an optional fourth output, e.g. segmentation, is ignored)."""
    shapes = [detail_shape(d) for d in outputs]
    if len(outputs) not in (3, 4) or any(len(s) != 4 for s in shapes):
        raise UnsupportedModelError(f"outputs {shapes} are not PoseNet's (3 or 4 maps [1,H,W,C])")
    for hi, hs in enumerate(shapes):
        k = hs[3]
        if k < 2:
            continue
        short = [i for i, s in enumerate(shapes) if s[1:3] == hs[1:3] and s[3] == 2 * k]
        mid = [i for i, s in enumerate(shapes) if s[1:3] == hs[1:3] and s[3] == 4 * (k - 1)]
        if len(short) == 1 and len(mid) == 1 and hi not in short + mid:
            return {"heatmaps": hi, "short_offsets": short[0], "mid_offsets": mid[0]}
    raise UnsupportedModelError(f"outputs {shapes} are not PoseNet's heatmaps/short/mid offsets")


def output_stride(input_h: int, map_h: int) -> int:
    """Input pixels per heatmap cell."""
    if map_h > 1 and (input_h - 1) % (map_h - 1) == 0:
        return (input_h - 1) // (map_h - 1)  # PoseNet's odd sizes: 481 = 30 * 16 + 1
    return max(1, round(input_h / map_h))


def _complete(outputs: Outputs, params: Mapping[str, Any]) -> dict:
    params = dict(params)
    if "outputs" not in params:
        params["outputs"] = resolve_outputs(outputs.details)
    if "output_stride" not in params:
        h = outputs.shapes[params["outputs"]["heatmaps"]][1]
        params["output_stride"] = output_stride(outputs.input_size[0], h)
    return params


def _recognise(outputs: Outputs) -> dict | None:
    shapes = outputs.shapes
    if not (len(shapes) in (3, 4) and all(len(s) == 4 for s in shapes)):
        return None
    return _complete(outputs, {})


def _bind(spec: ModelSpec, details: Sequence[dict], name: str) -> Decode:
    def decode_maps(outs: Sequence[np.ndarray], t: Thresholds) -> list:
        params = spec.decoder_params
        pos = params["outputs"]
        return decode(
            outs[pos["heatmaps"]][0],
            outs[pos["short_offsets"]][0],
            outs[pos["mid_offsets"]][0],
            output_stride=int(params["output_stride"]),
            max_poses=t.limit,
            score_threshold=float(params.get("part_score_threshold", 0.5)),
            min_pose_score=t.score,
            nms_radius=float(params.get("nms_radius", 20.0)),
            input_size=spec.input_size,
        )

    return decode_maps


DECODER = Decoder(
    "posenet",
    "pose",
    _bind,
    resolve_outputs=_complete,
    recognise=_recognise,
    resize_mode="letterbox",
    known_as="PoseNet",
)
