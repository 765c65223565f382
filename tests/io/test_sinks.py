"""Sinks: the JSONL schema (round trip), annotated videos read back, window/console behaviour."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest

from edgekit.core.types import (
    Classification,
    Detection,
    Frame,
    FrameResult,
    Keypoint,
    Pose,
)
from edgekit.errors import SinkError
from edgekit.io import sinks as sinks_mod
from edgekit.io.sinks import (
    ConsoleSink,
    JsonlSink,
    VideoSink,
    WindowSink,
    gui_available,
    result_to_json,
)


def make_result(index: int = 0, *, w: int = 200, h: int = 100, **kw) -> FrameResult:
    image = np.full((h, w, 3), 40, np.uint8)
    return FrameResult(Frame(image, index, index * 1000, "clip.mp4"), **kw)


def detection_result(index: int = 0) -> FrameResult:
    return make_result(
        index,
        detections=(
            Detection((0.1, 0.2, 0.5, 0.9), 0, 0.87654, "person"),
            Detection((0.0, 0.0, 1.0, 1.0), 2, 0.5, "car", track_id=7),
        ),
        timings={
            "capture": 1.0,
            "preprocess": 0.5,
            "invoke": 20.0,
            "postprocess": 0.25,
            "total": 25.0,
            "wait": 3.0,
            "step": 21.0,
        },
    )


def test_result_to_json_detections_in_frame_pixels():
    out = result_to_json(detection_result(5))
    assert out == {
        "frame": 5,
        "source": "clip.mp4",
        "width": 200,
        "height": 100,
        "detections": [
            {"label": "person", "class_id": 0, "score": 0.8765, "box": [20.0, 20.0, 100.0, 90.0]},
            {
                "label": "car",
                "class_id": 2,
                "score": 0.5,
                "box": [0.0, 0.0, 200.0, 100.0],
                "track_id": 7,
            },
        ],
        "timings_ms": {
            "capture": 1.0,
            "preprocess": 0.5,
            "invoke": 20.0,
            "postprocess": 0.25,
            "total": 25.0,
        },
    }


def test_result_to_json_poses_and_classes():
    kps = tuple(Keypoint(x=i / 20, y=0.5, score=0.9) for i in range(17))
    result = make_result(
        poses=(Pose(kps, 0.8),),
        classes=(Classification(281, 0.75, "tabby"), Classification(282, 0.125, "tiger cat")),
        timings={"invoke": 3.0},
    )
    out = result_to_json(result)
    assert "detections" not in out
    (pose,) = out["poses"]
    assert pose["score"] == 0.8 and len(pose["keypoints"]) == 17
    assert pose["keypoints"][2] == [20.0, 50.0, 0.9]
    assert out["classes"] == [
        {"label": "tabby", "class_id": 281, "score": 0.75},
        {"label": "tiger cat", "class_id": 282, "score": 0.125},
    ]
    assert out["timings_ms"] == {"invoke": 3.0}


def test_result_to_json_is_json_serializable_with_numpy_scalars():
    det = Detection(
        tuple(np.float32(v) for v in (0.1, 0.1, 0.2, 0.2)), np.int64(3), np.float32(0.6), "x"
    )
    text = json.dumps(result_to_json(make_result(detections=(det,))))
    assert json.loads(text)["detections"][0]["class_id"] == 3


def test_jsonl_round_trip_flushed_per_line(tmp_path):
    path = tmp_path / "sub" / "out.jsonl"
    results = [detection_result(i) for i in range(3)]
    with JsonlSink(path) as sink:
        sink.write(results[0])
        assert len(path.read_text().splitlines()) == 1  # flushed before close
        for r in results[1:]:
            sink.write(r)
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [result_to_json(r) for r in results]


def test_jsonl_to_a_stream():
    buf = io.StringIO()
    sink = JsonlSink(buf)
    sink.write(make_result(4))
    sink.close()
    assert json.loads(buf.getvalue())["frame"] == 4
    assert not buf.closed  # not ours to close


def test_jsonl_unwritable_path_is_a_sink_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SinkError, match=r"out\.jsonl"):
        JsonlSink(blocker / "out.jsonl")


def test_write_after_close_is_an_error(tmp_path):
    sink = JsonlSink(tmp_path / "a.jsonl")
    sink.close()
    sink.close()  # idempotent
    with pytest.raises(SinkError, match="closed"):
        sink.write(make_result())


def _read_video(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


@pytest.mark.parametrize(("name", "fourcc"), [("out.mp4", "mp4v"), ("out.avi", "MJPG")])
def test_video_sink_writes_every_frame_readable_back(tmp_path, name, fourcc):
    path = tmp_path / name
    sink = VideoSink(path, fps=10)
    assert sink.fourcc == fourcc
    assert not path.exists()  # opens lazily, at the first frame
    for i in range(9):
        sink.write(detection_result(i))
    sink.close()
    frames = _read_video(path)
    assert len(frames) == 9
    assert frames[0].shape == (100, 200, 3)


def test_video_sink_draws_the_overlay(tmp_path):
    path = tmp_path / "o.avi"
    with VideoSink(path) as sink:
        sink.write(make_result())  # nothing to draw
        sink.write(make_result(detections=(Detection((0.1, 0.1, 0.9, 0.9), 0, 0.9, "p"),)))
    plain, drawn = _read_video(path)
    assert np.abs(plain.astype(int) - 40).max() < 20
    assert np.abs(drawn.astype(int) - plain.astype(int)).max() > 100


def test_video_sink_uses_the_given_image_and_resizes_to_the_first_size(tmp_path):
    path = tmp_path / "o.avi"
    with VideoSink(path) as sink:
        sink.write(make_result(), np.full((100, 200, 3), 200, np.uint8))
        sink.write(make_result(w=50, h=30), np.full((30, 50, 3), 200, np.uint8))
        assert sink.size == (200, 100)
    frames = _read_video(path)
    assert len(frames) == 2 and all(f.shape == (100, 200, 3) for f in frames)
    assert abs(int(frames[1].mean()) - 200) < 10


def test_video_sink_bad_paths(tmp_path):
    with pytest.raises(SinkError, match=r"unknown extension \.gif"):
        VideoSink(tmp_path / "o.gif")
    with pytest.raises(SinkError, match="does not exist"):
        VideoSink(tmp_path / "missing" / "o.mp4")
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(SinkError, match=r"folder\.mp4: Is a directory"):
        VideoSink(tmp_path / "folder.mp4")
    (tmp_path / "file").write_text("x")
    with pytest.raises(SinkError, match="file is not a folder"):
        VideoSink(tmp_path / "file" / "o.mp4")


def test_video_sink_checks_the_path_at_once_without_touching_it(tmp_path):
    """Writability is checked when the sink is made; nothing appears (or is truncated) before
    the first frame."""
    new = tmp_path / "new.avi"
    VideoSink(new).close()
    assert not new.exists()
    old = tmp_path / "old.avi"
    old.write_bytes(b"an earlier run")
    VideoSink(old).close()
    assert old.read_bytes() == b"an earlier run"


def test_sinks_have_names(tmp_path):
    assert JsonlSink(tmp_path / "o.jsonl").name == f"jsonl {tmp_path / 'o.jsonl'}"
    assert VideoSink(tmp_path / "o.avi").name == f"video {tmp_path / 'o.avi'}"
    assert ConsoleSink().name == "console"


def test_video_sink_writer_that_does_not_open(tmp_path, monkeypatch):
    class Closed:
        def __init__(self, *args):
            self.released = False

        def isOpened(self):
            return False

        def release(self):
            self.released = True

    monkeypatch.setattr(sinks_mod.cv2, "VideoWriter", Closed)
    sink = VideoSink(tmp_path / "o.mp4", fourcc="avc1")
    with pytest.raises(SinkError, match=r"o\.mp4.*avc1"):
        sink.write(make_result())


def test_gui_detection_from_build_information():
    assert not gui_available("  GUI:                           NONE\n")
    assert gui_available("  GUI:                           GTK3\n    GTK+: YES")
    assert not gui_available("no gui line at all")
    assert gui_available() == ("NONE" not in cv2.getBuildInformation().split("GUI:")[1][:40])


def test_window_sink_without_gui_says_what_to_do(monkeypatch):
    monkeypatch.setattr(sinks_mod, "gui_available", lambda: False)
    with pytest.raises(SinkError, match="no GUI") as err:
        WindowSink()
    assert "opencv-python" in str(err.value) and "--save" in str(err.value)


def test_window_sink_shows_frames_and_stops_on_q(monkeypatch):
    calls = []
    keys = iter([-1, ord("q")])
    monkeypatch.setattr(sinks_mod, "gui_available", lambda: True)
    monkeypatch.setattr(sinks_mod.cv2, "namedWindow", lambda *a: calls.append("named"))
    monkeypatch.setattr(sinks_mod.cv2, "imshow", lambda t, img: calls.append(("show", img.shape)))
    monkeypatch.setattr(sinks_mod.cv2, "waitKey", lambda ms: next(keys, -1))
    monkeypatch.setattr(sinks_mod.cv2, "getWindowProperty", lambda t, p: 1.0)
    monkeypatch.setattr(sinks_mod.cv2, "destroyWindow", lambda t: calls.append("destroyed"))
    sink = WindowSink("t")
    sink.write(make_result())
    assert not sink.stop_requested
    sink.write(make_result(1))
    assert sink.stop_requested
    sink.close()
    assert calls == ["named", ("show", (100, 200, 3)), ("show", (100, 200, 3)), "destroyed"]


def test_console_sink_summaries():
    now = [0.0]

    def clock():
        return now[0]

    buf = io.StringIO()
    sink = ConsoleSink(every=2, stream=buf, clock=clock)
    for i in range(5):
        sink.write(detection_result(i))
        now[0] += 0.1
    sink.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("frame      1") and "10.0 fps" in lines[0]
    assert "2 detections" in lines[0] and "invoke 20.0 ms" in lines[0]
    assert lines[2] == "5 frames, 10.0 fps, 10 results in all"


def test_console_sink_with_nothing_written():
    buf = io.StringIO()
    ConsoleSink(stream=buf).close()
    assert buf.getvalue() == "0 frames\n"
