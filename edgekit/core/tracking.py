"""Multi-object tracking by detection (SORT-style). numpy only.

Each frame's detections are matched to the existing tracks by IoU between the detection boxes
and the tracks' predicted boxes (a constant-velocity Kalman filter over ``(cx, cy, w, h)``, or
the last box when ``kalman=False``), greedily by descending IoU, within a class unless
``per_class=False``; what is left is then matched the same way on enlarged ("buffered") boxes. A track becomes *confirmed*, and gets the next ``track_id`` (1, 2, ...),
after ``min_hits`` matched frames; a tentative track that misses a frame is dropped at once, a
confirmed one after ``max_age`` frames without a match (it coasts on its prediction meanwhile,
so a short occlusion keeps the id). :meth:`Tracker.update` returns the frame's detections
unchanged except for ``track_id`` (set on those matched to a confirmed track): boxes are the
detector's, and no detection is added or removed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgekit.core.boxes import cxcywh_to_xyxy, iou, xyxy_to_cxcywh
from edgekit.core.types import Box, Detection

__all__ = [
    "ConstantVelocityKalman",
    "TrackState",
    "TrackSummary",
    "Tracker",
    "TrackerConfig",
    "greedy_match",
    "summarize_tracks",
]

_MIN_SIZE = 1e-4  # a predicted box never shrinks below this (normalized) width/height


@dataclass(frozen=True)
class TrackerConfig:
    """``iou_threshold``: least IoU between a predicted box and a detection to match them;
    ``min_hits``: matched frames before a track is confirmed (and numbered); ``max_age``:
    frames a confirmed track may go unmatched before it is dropped; ``per_class``: match only
    within a class; ``kalman``: predict with a constant-velocity Kalman filter (else the
    last box); ``buffer``: after plain IoU matching, match the leftovers by the IoU of boxes
    grown by this fraction of their size on each side (0 turns it off), which keeps small or
    fast objects whose boxes barely overlap from one frame to the next."""

    iou_threshold: float = 0.3
    min_hits: int = 3
    max_age: int = 20
    per_class: bool = True
    kalman: bool = True
    buffer: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if self.min_hits < 1:
            raise ValueError(f"min_hits must be >= 1, got {self.min_hits}")
        if self.max_age < 0:
            raise ValueError(f"max_age must be >= 0, got {self.max_age}")
        if self.buffer < 0:
            raise ValueError(f"buffer must be >= 0, got {self.buffer}")


@dataclass(frozen=True)
class TrackState:
    """A snapshot of one live track: ``track_id`` is ``None`` while tentative; ``box`` is the
    current estimate (normalized xyxy); ``hits`` matched frames; ``misses`` frames since the
    last match; ``age`` frames since it started."""

    track_id: int | None
    class_id: int
    box: Box
    hits: int
    misses: int
    age: int


class ConstantVelocityKalman:
    """A Kalman filter over ``(cx, cy, w, h, vcx, vcy, vw, vh)``, one step per frame.

    Noise is proportional to the box size (as in DeepSORT/ByteTrack), so the filter behaves
    the same for small and large boxes in normalized coordinates.
    """

    POSITION_STD = 1.0 / 20.0
    VELOCITY_STD = 1.0 / 160.0

    def __init__(self, box_cxcywh: np.ndarray) -> None:
        z = np.asarray(box_cxcywh, dtype=np.float64).reshape(4)
        self.mean = np.concatenate([z, np.zeros(4)])
        size = self._size(z)
        std = np.concatenate([2 * self.POSITION_STD * size, 10 * self.VELOCITY_STD * size])
        self.cov = np.diag(std**2)
        self._f = np.eye(8)
        self._f[:4, 4:] = np.eye(4)
        self._h = np.eye(4, 8)

    @staticmethod
    def _size(z: np.ndarray) -> np.ndarray:
        w, h = max(float(z[2]), _MIN_SIZE), max(float(z[3]), _MIN_SIZE)
        return np.array([w, h, w, h])

    def predict(self) -> np.ndarray:
        """Advance one frame; returns the predicted ``(cx, cy, w, h)``."""
        size = self._size(self.mean[:4])
        q = np.diag(np.concatenate([self.POSITION_STD * size, self.VELOCITY_STD * size]) ** 2)
        self.mean = self._f @ self.mean
        self.mean[2:4] = np.maximum(self.mean[2:4], _MIN_SIZE)
        self.cov = self._f @ self.cov @ self._f.T + q
        return self.mean[:4].copy()

    def update(self, box_cxcywh: np.ndarray) -> np.ndarray:
        """Correct with a measured ``(cx, cy, w, h)``; returns the corrected estimate."""
        z = np.asarray(box_cxcywh, dtype=np.float64).reshape(4)
        r = np.diag((self.POSITION_STD * self._size(self.mean[:4])) ** 2)
        s = self._h @ self.cov @ self._h.T + r
        gain = np.linalg.solve(s, self._h @ self.cov).T  # cov H^T S^-1 (S symmetric)
        self.mean = self.mean + gain @ (z - self._h @ self.mean)
        self.cov = (np.eye(8) - gain @ self._h) @ self.cov
        self.mean[2:4] = np.maximum(self.mean[2:4], _MIN_SIZE)
        return self.mean[:4].copy()


def _grow(boxes: np.ndarray, factor: float) -> np.ndarray:
    """``xyxy`` boxes grown by ``factor`` times their width/height on each side."""
    wh = boxes[:, 2:4] - boxes[:, 0:2]
    return np.concatenate([boxes[:, 0:2] - factor * wh, boxes[:, 2:4] + factor * wh], axis=1)


def greedy_match(scores: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs ``(row, col)`` taken by descending ``scores`` (e.g. IoU), each row and column at
    most once, only where the score reaches ``threshold``."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return []
    rows, cols = np.nonzero(s >= threshold)
    order = np.argsort(-s[rows, cols], kind="stable")
    used_r: set[int] = set()
    used_c: set[int] = set()
    pairs = []
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    return pairs


class _Track:
    __slots__ = ("age", "box", "class_id", "filter", "hits", "misses", "track_id")

    def __init__(self, box_xyxy: np.ndarray, class_id: int, kalman: bool) -> None:
        self.box = np.asarray(box_xyxy, dtype=np.float64)
        self.class_id = class_id
        self.filter = ConstantVelocityKalman(xyxy_to_cxcywh(self.box[None])[0]) if kalman else None
        self.hits = 1
        self.misses = 0
        self.age = 1
        self.track_id: int | None = None

    def predict(self) -> np.ndarray:
        self.age += 1
        self.misses += 1
        if self.filter is not None:
            self.box = cxcywh_to_xyxy(self.filter.predict()[None])[0]
        return self.box

    def update(self, box_xyxy: np.ndarray) -> None:
        self.hits += 1
        self.misses = 0
        if self.filter is None:
            self.box = np.asarray(box_xyxy, dtype=np.float64)
        else:
            estimate = self.filter.update(xyxy_to_cxcywh(np.asarray(box_xyxy)[None])[0])
            self.box = cxcywh_to_xyxy(estimate[None])[0]


class Tracker:
    """Give detections stable ``track_id`` values across frames (see the module docstring).

    One instance per video stream; call :meth:`update` once per frame, in order.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._tracks: list[_Track] = []
        self._next_id = 1
        self.frames = 0

    def reset(self) -> None:
        """Forget every track; ids start again at 1."""
        self._tracks = []
        self._next_id = 1
        self.frames = 0

    @property
    def tracks(self) -> tuple[TrackState, ...]:
        """The live tracks (tentative and confirmed), oldest first."""
        return tuple(
            TrackState(
                track_id=t.track_id,
                class_id=t.class_id,
                box=tuple(float(v) for v in t.box),  # type: ignore[arg-type]
                hits=t.hits,
                misses=t.misses,
                age=t.age,
            )
            for t in self._tracks
        )

    def _associate(self, dets: list[Detection], boxes: np.ndarray) -> list[tuple[int, int]]:
        """(track, detection) pairs: by IoU with the predicted boxes, then, when ``buffer`` is
        set, the leftovers by the IoU of boxes grown by ``buffer`` times their size on each
        side (small or fast objects whose plain boxes barely overlap from frame to frame)."""
        cfg = self.config
        predicted = np.array([t.predict() for t in self._tracks]).reshape(-1, 4)
        if cfg.per_class:
            track_cls = np.array([t.class_id for t in self._tracks], dtype=np.int64)
            det_cls = np.array([int(d.class_id) for d in dets], dtype=np.int64)
            allowed = track_cls[:, None] == det_cls[None, :]
        else:
            allowed = np.ones((len(self._tracks), len(dets)), dtype=bool)
        pairs = greedy_match(np.where(allowed, iou(predicted, boxes), 0.0), cfg.iou_threshold)
        if cfg.buffer > 0:
            rows = sorted(set(range(len(predicted))) - {r for r, _ in pairs})
            cols = sorted(set(range(len(boxes))) - {c for _, c in pairs})
            if rows and cols:
                grown = iou(_grow(predicted[rows], cfg.buffer), _grow(boxes[cols], cfg.buffer))
                grown = np.where(allowed[np.ix_(rows, cols)], grown, 0.0)
                pairs += [(rows[i], cols[j]) for i, j in greedy_match(grown, cfg.iou_threshold)]
        return pairs

    def update(self, detections: Sequence[Detection]) -> tuple[Detection, ...]:
        """Match this frame's ``detections`` to the tracks; returns them with ``track_id`` set
        where they belong to a confirmed track (``None`` elsewhere), in the same order."""
        cfg = self.config
        self.frames += 1
        dets = list(detections)
        boxes = np.array([d.box for d in dets], dtype=np.float64).reshape(-1, 4)
        owner: dict[int, _Track] = {}
        for r, c in self._associate(dets, boxes):
            track = self._tracks[r]
            track.update(boxes[c])
            owner[c] = track
        for c, det in enumerate(dets):
            if c not in owner:
                track = _Track(boxes[c], int(det.class_id), cfg.kalman)
                self._tracks.append(track)
                owner[c] = track
        for track in self._tracks:
            if track.track_id is None and track.hits >= cfg.min_hits and track.misses == 0:
                track.track_id = self._next_id
                self._next_id += 1
        self._tracks = [
            t
            for t in self._tracks
            if t.misses == 0 or (t.track_id is not None and t.misses <= cfg.max_age)
        ]
        return tuple(
            dataclasses.replace(det, track_id=owner[c].track_id)
            if det.track_id != owner[c].track_id
            else det
            for c, det in enumerate(dets)
        )


@dataclass(frozen=True)
class TrackSummary:
    """Ground-truth-free figures of a tracked sequence (see :func:`summarize_tracks`)."""

    frames: int
    detections: int
    tracked: int
    tracks: int
    mean_length: float
    median_length: float
    born_inside: int
    died_inside: int

    @property
    def per_frame(self) -> float:
        """Mean detections per frame."""
        return self.detections / self.frames if self.frames else 0.0

    @property
    def coverage(self) -> float:
        """Fraction of detections that carry a track id."""
        return self.tracked / self.detections if self.detections else 0.0


def summarize_tracks(
    frames: Sequence[Sequence[Detection]],
    *,
    class_id: int | None = None,
    margin: float = 0.03,
    warmup: int = 5,
) -> TrackSummary:
    """Fragmentation proxies for tracked detections without ground truth.

    ``frames``: each frame's detections (``track_id`` set by a tracker), optionally only those
    of ``class_id``. ``tracks``: distinct ids; lengths count the frames an id appears in.
    ``born_inside`` / ``died_inside``: tracks whose first (last) box is farther than ``margin``
    from every image edge and that start after the first ``warmup`` frames (end before the last
    ``warmup``): objects rarely appear or vanish mid-view, so these mostly count fragments
    (a lost track picked up again under a new id), i.e. an upper bound on identity breaks.
    """
    first: dict[int, tuple[int, Box]] = {}
    last: dict[int, tuple[int, Box]] = {}
    length: dict[int, int] = {}
    detections = tracked = 0
    for k, frame in enumerate(frames):
        for det in frame:
            if class_id is not None and det.class_id != class_id:
                continue
            detections += 1
            if det.track_id is None:
                continue
            tracked += 1
            first.setdefault(det.track_id, (k, det.box))
            last[det.track_id] = (k, det.box)
            length[det.track_id] = length.get(det.track_id, 0) + 1

    def inside(box: Box) -> bool:
        x0, y0, x1, y1 = box
        return min(x0, y0, 1.0 - x1, 1.0 - y1) > margin

    n = len(frames)
    lengths = np.array(list(length.values()), dtype=np.float64)
    return TrackSummary(
        frames=n,
        detections=detections,
        tracked=tracked,
        tracks=len(length),
        mean_length=float(lengths.mean()) if lengths.size else 0.0,
        median_length=float(np.median(lengths)) if lengths.size else 0.0,
        born_inside=sum(k >= warmup and inside(b) for k, b in first.values()),
        died_inside=sum(k < n - warmup and inside(b) for k, b in last.values()),
    )
