"""runtime/track_step.py: the tracking step wrapper, on a fake step and on vtest.avi with SSD."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from edgekit.core.tracking import Tracker, TrackerConfig, summarize_tracks
from edgekit.core.types import Detection, Frame, FrameResult
from edgekit.io.sinks import result_to_json
from edgekit.runtime.track_step import make_tracking_step

SSD = ("models", "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite")
PERSON = 0


def fake_step(frame: Frame) -> FrameResult:
    x = 0.1 + 0.01 * frame.index
    dets = (Detection((x, 0.2, x + 0.1, 0.4), 0, 0.9, "person"),)
    return FrameResult(frame, detections=dets, timings={"invoke": 3.0})


def test_wrapper_adds_ids_and_a_track_timing():
    ticks = itertools.count()
    step = make_tracking_step(
        fake_step, Tracker(TrackerConfig(min_hits=2)), clock=lambda: next(ticks) * 0.001
    )
    image = np.zeros((10, 10, 3), np.uint8)
    results = [step(Frame(image, k, k, "fake")) for k in range(4)]
    assert [r.detections[0].track_id for r in results] == [None, 1, 1, 1]
    assert all(r.timings["invoke"] == 3.0 and r.timings["track"] == 1.0 for r in results)
    assert result_to_json(results[-1])["detections"][0]["track_id"] == 1
    assert step.tracker.frames == 4
    # everything but the id is the inner step's
    inner = fake_step(Frame(image, 3, 3, "fake")).detections[0]
    assert dataclasses.replace(results[-1].detections[0], track_id=None) == inner


def test_vtest_people_tracks(shared):
    """200 frames of pedestrians: fragmentation proxies stay near the figures in
    docs/benchmarks.md (53 tracks, mean length 22 frames, coverage 0.89 at these settings)."""
    from edgekit.io.sources import open_source
    from edgekit.runtime.model import Model
    from edgekit.runtime.step import make_step

    model = Model.load(shared(*SSD), threads=1)
    step = make_tracking_step(make_step(model, score_threshold=0.5))
    source = open_source(str(shared("video", "vtest.avi")))
    frames = []
    try:
        for frame in itertools.islice(source, 200):
            frames.append(step(frame).detections)
    finally:
        source.close()
    summary = summarize_tracks(frames, class_id=PERSON)
    assert summary.frames == 200
    assert 5.0 < summary.per_frame < 9.0  # about 6.7 people per frame
    assert summary.coverage > 0.8
    assert 15 <= summary.tracks <= 75
    assert summary.mean_length >= 15.0
    # ids are unique per frame
    for dets in frames:
        ids = [d.track_id for d in dets if d.track_id is not None]
        assert len(ids) == len(set(ids))
