"""core/tracking.py: stable ids on synthetic moving boxes (crossing, occlusion, appear/disappear)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgekit.core.tracking import (
    ConstantVelocityKalman,
    Tracker,
    TrackerConfig,
    greedy_match,
)
from edgekit.core.types import Detection

SIZE = 0.1


def box_at(cx: float, cy: float, size: float = SIZE) -> tuple[float, float, float, float]:
    h = size / 2
    return (cx - h, cy - h, cx + h, cy + h)


def run_tracker(tracker: Tracker, frames: list[list[tuple[int, Detection]]]) -> dict[int, list]:
    """Feed frames of (ground-truth object, detection); returns object -> ids per frame seen."""
    ids: dict[int, list] = {}
    for frame in frames:
        out = tracker.update([d for _, d in frame])
        assert len(out) == len(frame)
        for (obj, det), got in zip(frame, out, strict=True):
            assert got.box == det.box and got.class_id == det.class_id and got.score == det.score
            ids.setdefault(obj, []).append(got.track_id)
    return ids


def id_switches(ids: dict[int, list]) -> int:
    """Changes of id along each object's confirmed assignments, plus ids shared by objects."""
    switches = 0
    owners: dict[int, set[int]] = {}
    for obj, seq in ids.items():
        confirmed = [i for i in seq if i is not None]
        switches += sum(a != b for a, b in itertools.pairwise(confirmed))
        for i in confirmed:
            owners.setdefault(i, set()).add(obj)
    return switches + sum(len(o) - 1 for o in owners.values())


def det(cx: float, cy: float, class_id: int = 0, score: float = 0.9) -> Detection:
    return Detection(box_at(cx, cy), class_id, score, "person")


def test_greedy_match_takes_best_pairs_first():
    scores = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert sorted(greedy_match(scores, 0.3)) == [(0, 0)]  # (1, 1) is under the threshold
    assert sorted(greedy_match(scores, 0.05)) == [(0, 0), (1, 1)]
    assert greedy_match(np.zeros((0, 3)), 0.3) == []


def test_kalman_learns_constant_velocity():
    kf = ConstantVelocityKalman(np.array([0.1, 0.5, 0.1, 0.2]))
    for k in range(1, 15):
        kf.predict()
        kf.update(np.array([0.1 + 0.02 * k, 0.5, 0.1, 0.2]))
    predicted = kf.predict()
    np.testing.assert_allclose(predicted, [0.1 + 0.02 * 15, 0.5, 0.1, 0.2], atol=2e-3)


def test_min_hits_before_an_id_and_ids_count_from_one():
    tracker = Tracker(TrackerConfig(min_hits=3))
    seen = [tracker.update([det(0.3 + 0.01 * k, 0.5)])[0].track_id for k in range(5)]
    assert seen == [None, None, 1, 1, 1]
    assert [t.track_id for t in tracker.tracks] == [1]


def test_head_on_crossing_same_class_keeps_ids():
    frames = []
    for k in range(60):
        a = 0.1 + 0.0135 * k
        b = 0.9 - 0.0135 * k
        frames.append([(0, det(a, 0.5)), (1, det(b, 0.5))])
    ids = run_tracker(Tracker(), frames)
    assert id_switches(ids) == 0
    assert ids[0][-1] != ids[1][-1] and None not in (ids[0][-1], ids[1][-1])


def test_perpendicular_crossing_keeps_ids():
    frames = []
    for k in range(50):
        t = 0.1 + 0.016 * k
        frames.append([(0, det(t, 0.5)), (1, det(0.5, t)), (2, det(0.85, 0.15))])
    ids = run_tracker(Tracker(), frames)
    assert id_switches(ids) == 0
    assert len({seq[-1] for seq in ids.values()}) == 3


def test_short_occlusion_keeps_the_id_long_one_gets_a_new_id():
    cfg = TrackerConfig(max_age=6)
    frames = []
    for k in range(40):
        x = 0.1 + 0.02 * k
        hidden = 10 <= k < 15 or 22 <= k < 32  # 5 frames (kept), then 10 frames (> max_age)
        frames.append([] if hidden else [(0, det(x, 0.4))])
    tracker = Tracker(cfg)
    ids = run_tracker(tracker, frames)[0]
    before, middle, after = ids[:10], ids[10:17], ids[17:]
    assert before[-1] == 1 and set(middle) == {1}
    assert after[-1] == 2  # the second gap was longer than max_age: a new track
    assert tracker.frames == 40


def test_appear_and_disappear_well_separated_tracks():
    rng = np.random.default_rng(0)
    # 5 objects on separate lanes, entering and leaving at different times, noisy boxes,
    # 10% of detections missed.
    lanes = [(0.1, 0.012, 0, 60), (0.3, -0.01, 5, 70), (0.5, 0.008, 20, 80), (0.7, 0.0, 0, 45)]
    lanes.append((0.9, 0.015, 30, 80))
    frames = []
    for k in range(80):
        frame = []
        for obj, (y, vx, start, end) in enumerate(lanes):
            if start <= k < end and rng.random() > 0.1:
                x0 = 0.5 if vx <= 0 else 0.1
                x = x0 + vx * (k - start)
                jitter = rng.normal(0, 0.003, 2)
                frame.append((obj, det(x + jitter[0], y + jitter[1])))
        rng.shuffle(frame)
        frames.append(frame)
    ids = run_tracker(Tracker(TrackerConfig(max_age=5)), frames)
    assert id_switches(ids) == 0
    assert all(seq[-1] is not None for seq in ids.values())
    assert len({i for seq in ids.values() for i in seq if i is not None}) == len(lanes)


def test_per_class_association():
    # Two boxes of different classes at the same place stay two tracks per class; a class
    # change at the same place continues the track only when matching is class-agnostic.
    frames = [[(0, det(0.5, 0.5, class_id=0)), (1, det(0.505, 0.5, class_id=3))] for _ in range(6)]
    ids = run_tracker(Tracker(), frames)
    assert id_switches(ids) == 0 and ids[0][-1] != ids[1][-1]
    relabelled = [[(0, det(0.5, 0.5, class_id=0))]] * 4 + [[(0, det(0.5, 0.5, class_id=3))]]
    assert run_tracker(Tracker(), relabelled)[0][-2:] == [1, None]
    agnostic = run_tracker(Tracker(TrackerConfig(per_class=False)), relabelled)
    assert agnostic[0][-2:] == [1, 1]


def test_without_kalman_the_last_box_is_the_prediction():
    tracker = Tracker(TrackerConfig(kalman=False, min_hits=1))
    first = tracker.update([det(0.5, 0.5)])[0].track_id
    assert tracker.update([det(0.52, 0.5)])[0].track_id == first
    assert tracker.tracks[0].box == pytest.approx(box_at(0.52, 0.5))


def test_reset_and_validation():
    tracker = Tracker(TrackerConfig(min_hits=1))
    tracker.update([det(0.5, 0.5)])
    tracker.reset()
    assert tracker.tracks == () and tracker.update([det(0.2, 0.2)])[0].track_id == 1
    assert tracker.update([]) == ()
    for bad in ({"iou_threshold": 0.0}, {"min_hits": 0}, {"max_age": -1}):
        with pytest.raises(ValueError):
            TrackerConfig(**bad)


def test_buffer_keeps_small_fast_objects_plain_iou_loses_them():
    # A 0.04-wide box moving 0.03 per frame: consecutive boxes have IoU 0.14 < 0.3.
    frames = [[(0, Detection(box_at(0.1 + 0.03 * k, 0.5, 0.04), 0, 0.9))] for k in range(20)]
    buffered = run_tracker(Tracker(TrackerConfig(buffer=0.5)), frames)[0]
    assert set(buffered[2:]) == {1}
    plain = run_tracker(Tracker(TrackerConfig(buffer=0.0)), frames)[0]
    assert set(plain) == {None}  # a new tentative track every frame, never confirmed


def test_side_by_side_walkers_with_dropouts_do_not_swap():
    rng = np.random.default_rng(1)
    frames = []
    for k in range(60):
        x = 0.1 + 0.012 * k
        frame = [(0, det(x, 0.5)), (1, det(x + 0.15, 0.5))]  # gap of half a box width
        frame = [item for item in frame if rng.random() > 0.25]
        frames.append(frame)
    ids = run_tracker(Tracker(), frames)
    assert id_switches(ids) == 0 and ids[0][-1] != ids[1][-1]
