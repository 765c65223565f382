"""Frame sources: generated videos/images, folders, globs, sample photos, fake picamera2, errors."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest

from edgekit.core.letterbox import make_transform
from edgekit.errors import SourceError
from edgekit.io import picamera as picamera_mod
from edgekit.io import sources as sources_mod
from edgekit.io.picamera import Picamera2Source, picamera_to_rgb
from edgekit.io.sources import (
    GENERATED_SAMPLE_NAME,
    ImageSource,
    LoresSource,
    VideoSource,
    open_source,
    sample_images,
    sample_source,
)
from edgekit.io.testcard import ArraySource, draw_test_card

RED_RGB = (230, 20, 20)


def _rgb_frame(i: int, h: int = 48, w: int = 64) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = RED_RGB
    img[: h // 2, :, 2] = min(255, 10 * i)  # something that changes per frame
    return img


def write_video(path: Path, n: int, *, fourcc: str = "MJPG", fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (64, 48))
    assert writer.isOpened()
    for i in range(n):
        writer.write(cv2.cvtColor(_rgb_frame(i), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_image(path: Path, rgb: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


# --- video files ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fourcc"), [("clip.avi", "MJPG"), ("clip.mp4", "mp4v")])
def test_video_file_yields_every_frame_as_rgb(tmp_path, name, fourcc):
    path = write_video(tmp_path / name, 7, fourcc=fourcc)
    with open_source(str(path)) as src:
        assert isinstance(src, VideoSource)
        assert not src.live and src.fps == pytest.approx(10.0)
        frames = list(src)
    assert [f.index for f in frames] == list(range(7))
    assert [f.timestamp_ns for f in frames] == [i * 100_000_000 for i in range(7)]
    first = frames[0]
    assert first.image.shape == (48, 64, 3) and first.image.dtype == np.uint8
    assert first.source == str(path)
    bottom = first.image[40, 10].astype(int)  # the untouched red half: R high, B low
    assert bottom[0] > 180 and bottom[2] < 70
    assert src.closed


def test_missing_file_names_it(tmp_path):
    with pytest.raises(SourceError, match=r"no such file.*nothere\.mp4"):
        open_source(str(tmp_path / "nothere.mp4"))


def test_corrupt_video_names_it(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"definitely not a video" * 50)
    with pytest.raises(SourceError, match=r"broken\.mp4") as err:
        open_source(str(bad))
    assert "\n" not in str(err.value)


def test_empty_video_file_is_an_error(tmp_path):
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match=r"empty\.avi"):
        open_source(str(empty))


class _FakeCapture:
    """A VideoCapture stand-in: opened or not, with a list of BGR frames to return."""

    def __init__(self, target, frames=(), opened=True):
        self.target = target
        self._frames = list(frames)
        self._opened = opened
        self.released = False
        self.props: dict[int, float] = {}

    def isOpened(self):
        return self._opened

    def read(self):
        if self._frames:
            return True, self._frames.pop(0)
        return False, None

    def set(self, prop, value):
        self.props[prop] = value
        return True

    def get(self, prop):
        return self.props.get(prop, 0.0)

    def release(self):
        self.released = True


def test_camera_that_opens_but_gives_no_frames(monkeypatch):
    made = []

    def factory(target):
        made.append(_FakeCapture(target, frames=[], opened=True))
        return made[-1]

    monkeypatch.setattr(sources_mod.cv2, "VideoCapture", factory)
    with pytest.raises(SourceError, match="camera 3 opened but returned no frames"):
        open_source(3)
    assert made[0].released


def test_camera_index_that_does_not_exist():
    with pytest.raises(SourceError, match="camera 97"):
        open_source("97")


def test_camera_index_reads_frames_and_is_live(monkeypatch):
    bgr = [np.full((4, 6, 3), (10, 20, 30), np.uint8) for _ in range(3)]
    monkeypatch.setattr(
        sources_mod.cv2, "VideoCapture", lambda target: _FakeCapture(target, frames=bgr)
    )
    with open_source("0", width=640, height=480) as src:
        assert src.live and src.name == "camera 0"
        frames = list(src)
    assert len(frames) == 3
    assert tuple(frames[0].image[0, 0]) == (30, 20, 10)  # BGR -> RGB, once
    assert src._cap.props[cv2.CAP_PROP_FRAME_WIDTH] == 640


def test_stream_url_is_live(monkeypatch):
    seen = []

    def factory(target):
        seen.append(target)
        return _FakeCapture(target, frames=[np.zeros((2, 2, 3), np.uint8)])

    monkeypatch.setattr(sources_mod.cv2, "VideoCapture", factory)
    src = open_source("rtsp://192.0.2.1:554/stream")
    assert src.live and seen == ["rtsp://192.0.2.1:554/stream"]
    src.close()


def test_dead_stream_is_an_error(monkeypatch):
    monkeypatch.setattr(
        sources_mod.cv2, "VideoCapture", lambda target: _FakeCapture(target, opened=False)
    )
    with pytest.raises(SourceError, match=r"stream http://192\.0\.2\.1/cam"):
        open_source("http://192.0.2.1/cam")


# --- images, folders, globs -------------------------------------------------------------------


def test_single_image_file(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 200
    path = write_image(tmp_path / "a.png", rgb)
    with open_source(str(path)) as src:
        assert isinstance(src, ImageSource) and not src.live
        (frame,) = list(src)
    assert frame.source == str(path)
    np.testing.assert_array_equal(frame.image, rgb)


def test_image_with_unknown_extension_is_probed(tmp_path):
    rgb = np.full((8, 8, 3), 77, np.uint8)
    png = write_image(tmp_path / "x.png", rgb)
    odd = tmp_path / "snapshot.data"
    odd.write_bytes(png.read_bytes())
    src = open_source(str(odd))
    assert isinstance(src, ImageSource)
    assert len(list(src)) == 1


def test_folder_of_images_sorted_each_with_its_path(tmp_path):
    for name in ("b.jpg", "a.png", "c.bmp"):
        write_image(tmp_path / name, np.full((10, 12, 3), 100, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    frames = list(open_source(str(tmp_path)))
    assert [Path(f.source).name for f in frames] == ["a.png", "b.jpg", "c.bmp"]
    assert [f.index for f in frames] == [0, 1, 2]


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(SourceError, match=f"no images in folder {tmp_path}"):
        open_source(str(tmp_path))


def test_glob(tmp_path):
    for name in ("s1.jpg", "s2.jpg", "t1.png"):
        write_image(tmp_path / name, np.full((6, 6, 3), 50, np.uint8))
    frames = list(open_source(str(tmp_path / "s*.jpg")))
    assert [Path(f.source).name for f in frames] == ["s1.jpg", "s2.jpg"]


def test_glob_matching_nothing_is_an_error(tmp_path):
    with pytest.raises(SourceError, match=r"no images match .*\*\.jpg"):
        open_source(str(tmp_path / "*.jpg"))


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    src = open_source(str(bad))
    with pytest.raises(SourceError, match=r"bad\.jpg"):
        list(src)


def test_repeat_loops_images(tmp_path):
    path = write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    src = open_source(str(path), repeat=3)
    assert len(src) == 3
    assert [f.index for f in src] == [0, 1, 2]


def test_closing_stops_iteration(tmp_path):
    paths = [write_image(tmp_path / f"{i}.png", np.zeros((4, 4, 3), np.uint8)) for i in range(5)]
    src = ImageSource(paths)
    it = iter(src)
    next(it)
    src.close()
    assert list(it) == []


# --- the built-in sample ------------------------------------------------------------------------


def test_sample_source_uses_photos_from_installed_packages():
    paths = sample_images()
    if not paths:
        pytest.skip("neither matplotlib nor scikit-image is installed")
    with open_source("sample") as src:
        frames = list(src)
    assert src.name == "sample" and not src.live
    assert [f.source for f in frames] == [str(p) for p in paths]
    for f in frames:
        assert f.image.ndim == 3 and f.image.shape[2] == 3 and f.image.dtype == np.uint8
    assert open_source(None).name == "sample"


def test_sample_source_without_packages_is_a_generated_test_card(monkeypatch):
    # A Raspberry Pi's `pi` extra has neither matplotlib nor scikit-image.
    monkeypatch.setattr(sources_mod, "_package_dir", lambda module: None)
    with sample_source(repeat=2) as src:
        frames = list(src)
    assert (
        open_source(None).name == src.name == GENERATED_SAMPLE_NAME
        and "no photo package" in src.name
    )
    assert len(frames) == 2 and [f.index for f in frames] == [0, 1]
    a, b = frames[0].image, frames[1].image
    assert a.shape == (480, 640, 3) and a.dtype == np.uint8 and a.flags.c_contiguous
    assert np.array_equal(a, b) and a is not b  # each frame its own copy
    assert np.array_equal(a, draw_test_card())  # deterministic
    assert a.std() > 40  # a picture, not a flat fill
    assert frames[0].source == GENERATED_SAMPLE_NAME


def test_test_card_and_array_source_refuse_bad_input():
    with pytest.raises(SourceError, match="at least 64x48"):
        draw_test_card(32, 32)
    with pytest.raises(SourceError, match="RGB uint8"):
        ArraySource([np.zeros((4, 4), np.uint8)], name="x")
    with pytest.raises(SourceError, match="no images"):
        ArraySource([], name="x")
    with pytest.raises(SourceError, match="repeat"):
        ArraySource([draw_test_card()], name="x", repeat=0)
    src = ArraySource([draw_test_card(64, 48)], name="x", repeat=3)
    it = iter(src)
    next(it)
    src.close()
    assert list(it) == [] and len(src) == 3


def test_sample_lookup_does_not_import_the_packages():
    import subprocess
    import sys

    code = (
        "import sys; from edgekit.io.sources import sample_images; sample_images(); "
        "print('skimage' in sys.modules, 'matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --- picamera2, through a fake written against its documented API --------------------------------


class FakeRequest:
    def __init__(self, cam: FakePicamera2, n: int) -> None:
        self.cam, self.n = cam, n
        self.released = False

    def make_array(self, name: str) -> np.ndarray:
        assert not self.released, "make_array after release"
        stream = self.cam.config[name]
        w, h = stream["size"]
        rgb = np.zeros((h, w, 3), np.uint8)
        rgb[..., 0] = 200  # red
        rgb[..., 1] = 10 * (self.n % 20)
        if stream["format"] == "RGB888":  # picamera2: memory order B, G, R
            return np.ascontiguousarray(rgb[..., ::-1])
        if stream["format"] == "YUV420":  # planar I420, (h * 3 / 2, w)
            return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
        raise AssertionError(stream["format"])

    def get_metadata(self) -> dict:
        return {"SensorTimestamp": 1_000_000 + self.n}

    def release(self) -> None:
        self.released = True
        self.cam.released += 1


class FakePicamera2:
    """Picamera2(camera_num), create_video_configuration, configure, start, captured_request,
    stop, close: the calls Picamera2Source makes, as picamera2's manual documents them."""

    cameras = 1
    instances: ClassVar[list[FakePicamera2]] = []

    def __init__(self, camera_num: int = 0) -> None:
        if camera_num >= self.cameras:
            raise IndexError("list index out of range")
        self.camera_num = camera_num
        self.config: dict | None = None
        self.started = self.stopped = self.closed = False
        self.requests = self.released = 0
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, main=None, lores=None, **kwargs):
        config = {"use_case": "video", "main": dict(main or {}), **kwargs}
        if lores is not None:
            config["lores"] = dict(lores)
        return config

    def configure(self, config) -> None:
        if "lores" in config and config["lores"]["format"] != "YUV420":
            raise RuntimeError("lores must be YUV420 on this Pi")
        self.config = config

    def start(self) -> None:
        assert self.config is not None
        self.started = True

    @contextlib.contextmanager
    def captured_request(self, wait=None, flush=None):
        assert self.started and not self.stopped
        request = FakeRequest(self, self.requests)
        self.requests += 1
        try:
            yield request
        finally:
            request.release()

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        self.closed = True


def test_picamera2_main_for_display_lores_for_inference():
    src = Picamera2Source(0, size=(320, 180), lores_size=(160, 90), picamera2_factory=FakePicamera2)
    cam = FakePicamera2.instances[-1]
    assert cam.config["main"] == {"size": (320, 180), "format": "RGB888"}
    assert cam.config["lores"] == {"size": (160, 90), "format": "YUV420"}
    assert src.live and src.name == "picamera2 0"
    frames = []
    for frame in src:
        frames.append(frame)
        if len(frames) == 4:
            break
    src.close()
    assert cam.requests == cam.released == 4  # every buffer went back
    assert cam.stopped and cam.closed
    f = frames[2]
    assert f.image.shape == (180, 320, 3) and f.lores.shape == (90, 160, 3)
    assert f.inference_image is f.lores
    assert tuple(f.image[5, 5]) == (200, 20, 0)  # RGB, not BGR
    assert abs(int(f.lores[5, 5, 0]) - 200) <= 4 and abs(int(f.lores[5, 5, 1]) - 20) <= 4
    assert f.timestamp_ns == 1_000_002 and [x.index for x in frames] == [0, 1, 2, 3]


def test_picamera2_without_lores():
    with Picamera2Source(0, size=(64, 48), lores_size=None, picamera2_factory=FakePicamera2) as src:
        frame = next(iter(src))
    assert frame.lores is None and frame.inference_image is frame.image
    assert "lores" not in FakePicamera2.instances[-1].config


def test_picamera2_missing_camera_is_a_source_error():
    with pytest.raises(SourceError, match="picamera2 camera 2"):
        Picamera2Source(2, picamera2_factory=FakePicamera2)


def test_picamera2_bad_configuration_closes_the_camera():
    with pytest.raises(SourceError, match="cannot start picamera2 camera 0"):
        Picamera2Source(0, lores_format="RGB888", picamera2_factory=FakePicamera2)
    assert FakePicamera2.instances[-1].closed


def test_camera_flag_prefers_picamera2_when_available(monkeypatch):
    monkeypatch.setattr(sources_mod, "picamera2_available", lambda: True)
    src = open_source(None, camera=True, picamera2_factory=FakePicamera2, size=(64, 48))
    assert isinstance(src, Picamera2Source)
    src.close()


def test_camera_flag_falls_back_to_opencv(monkeypatch):
    monkeypatch.setattr(sources_mod, "picamera2_available", lambda: False)
    with pytest.raises(SourceError, match="camera 98"):
        open_source(None, camera=98)


def test_picamera2_requested_but_not_installed(monkeypatch):
    monkeypatch.setattr(sources_mod, "picamera2_available", lambda: False)
    with pytest.raises(SourceError, match="picamera2 is not installed") as err:
        open_source("picamera2")
    assert "python3-picamera2" in str(err.value)


def test_picamera2_import_error_is_a_source_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_picamera2(name, *args, **kwargs):
        if name == "picamera2":
            raise ImportError("No module named 'libcamera'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_picamera2)
    with pytest.raises(SourceError, match="libcamera"):
        picamera_mod.Picamera2Source(0)


def test_picamera_formats():
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 255
    xrgb = np.concatenate([rgb[..., ::-1], np.zeros((4, 6, 1), np.uint8)], axis=2)
    np.testing.assert_array_equal(picamera_to_rgb(xrgb, "XRGB8888"), rgb)
    np.testing.assert_array_equal(picamera_to_rgb(rgb, "BGR888"), rgb)
    with pytest.raises(SourceError, match="NV12"):
        picamera_to_rgb(rgb, "NV12")


@pytest.mark.parametrize(("fmt", "code"), [("YUV420", "I420"), ("YVU420", "YV12")])
def test_picamera_planar_yuv_to_rgb(fmt, code):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 220, 120, 30
    yuv = cv2.cvtColor(rgb, getattr(cv2, f"COLOR_RGB2YUV_{code}"))
    assert yuv.shape == (12, 8)
    back = picamera_to_rgb(yuv, fmt)
    assert back.shape == (8, 8, 3)
    assert np.abs(back.astype(int) - rgb.astype(int)).max() <= 4  # not channel-swapped


# --- lores for any source -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["resize", "letterbox"])
def test_lores_source_resizes_like_the_model_would(tmp_path, mode):
    path = write_video(tmp_path / "v.avi", 3)
    with LoresSource(open_source(str(path)), (30, 30), resize_mode=mode) as src:
        frames = list(src)
        inner = src.inner
    assert inner.closed
    expected_hw = make_transform(mode, (48, 64), (30, 30)).resized_hw
    for f in frames:
        assert f.image.shape == (48, 64, 3)
        assert f.lores.shape[:2] == tuple(expected_hw)
        np.testing.assert_array_equal(
            f.lores, cv2.resize(f.image, expected_hw[::-1], interpolation=cv2.INTER_LINEAR)
        )
    assert len(frames) == 3


def test_lores_source_keeps_existing_lores():
    src = Picamera2Source(0, size=(64, 48), lores_size=(32, 24), picamera2_factory=FakePicamera2)
    wrapped = LoresSource(src, (10, 10))
    frame = next(iter(wrapped))
    assert frame.lores.shape == (24, 32, 3)
    wrapped.close()
    assert src.closed


@pytest.mark.parametrize(
    ("mode", "input_hw", "lores"),
    [
        ("letterbox", (320, 320), (320, 180)),  # exactly what the model resizes a frame to
        ("letterbox", (300, 300), (302, 170)),  # 300x169 rounded up to even sides
        ("resize", (300, 300), (534, 300)),  # main's aspect, covering the stretched input
        ("letterbox", (1080, 1920), (1280, 720)),  # never larger than the main stream
    ],
)
def test_picamera2_lores_is_sized_from_the_model(mode, input_hw, lores, monkeypatch):
    monkeypatch.setattr(sources_mod, "picamera2_available", lambda: True)

    def resized_hw(hw):
        return make_transform(mode, hw, input_hw).resized_hw

    assert picamera_mod.lores_size_for((1280, 720), resized_hw) == lores
    src = open_source(
        None, camera=True, picamera2_factory=FakePicamera2, size=(1280, 720), resized_hw=resized_hw
    )
    try:
        assert src._cam.config["lores"]["size"] == lores
    finally:
        src.close()


def test_lores_source_takes_the_models_resize_rule(tmp_path):
    path = write_video(tmp_path / "v.avi", 2)
    seen = []

    def resized_hw(hw):
        seen.append(hw)
        return (12, 16)

    with LoresSource(open_source(str(path)), resized_hw) as src:
        frames = list(src)
    assert [f.lores.shape for f in frames] == [(12, 16, 3)] * 2
    assert seen == [(48, 64)]  # decided once per frame size
