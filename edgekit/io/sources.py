"""Frame sources: OpenCV (camera index, video file, RTSP/HTTP stream), images, built-in sample.

Every source is an iterable of :class:`~edgekit.core.types.Frame` (RGB uint8; OpenCV's BGR is
converted once, here) with ``.name``, ``.live`` (a camera or stream that keeps producing frames
whether or not anyone reads them), ``.fps`` (``None`` when unknown) and ``.close()``; sources are
context managers. :func:`open_source` picks one from what the user typed.

``Frame.timestamp_ns`` is the media position for video files (frame number / fps) and
``time.time_ns()`` at capture for cameras, streams and images.
"""

from __future__ import annotations

import dataclasses
import glob as globlib
import importlib.util
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgekit.core.letterbox import make_transform
from edgekit.core.types import Frame
from edgekit.data.images import IMAGE_SUFFIXES, decode_rgb
from edgekit.errors import SourceError
from edgekit.io.base import BaseSource, Source, bgr_to_rgb

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}
)
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")

# Real photos shipped inside PyPI wheels: (distribution to pip install, import name, path in it).
SAMPLE_PHOTOS: tuple[tuple[str, str, str], ...] = (
    ("matplotlib", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("scikit-image", "skimage", "data/astronaut.png"),
    ("scikit-image", "skimage", "data/chelsea.png"),
    ("scikit-image", "skimage", "data/coffee.png"),
    ("scikit-image", "skimage", "data/motorcycle_left.png"),
    ("scikit-image", "skimage", "data/rocket.jpg"),
)


class VideoSource(BaseSource):
    """OpenCV ``VideoCapture`` over a camera index, a video file or a stream URL.

    Opening reads the first frame, so a missing camera, an unreadable file or a dead stream fails
    here with :class:`SourceError` rather than later inside the loop.

    With ``reconnect``, a live source that stops giving frames (a camera unplugged, a stream
    dropped) reconnects: the capture is released and opened again after
    waiting ``reconnect_delays`` (0.5 s doubling to 8 s), frame indices going on where they
    stopped. After ``reconnect_attempts`` failed attempts or ``reconnect_timeout_s`` seconds
    without a frame it gives up with :class:`SourceError`, the capture released.
    ``capture_factory``, ``sleep`` and ``clock`` are for tests (a fake ``VideoCapture``).
    """

    def __init__(
        self,
        target: int | str | Path,
        *,
        live: bool | None = None,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        name: str | None = None,
        reconnect: bool = False,
        reconnect_attempts: int = 10,
        reconnect_timeout_s: float = 60.0,
        reconnect_delays: tuple[float, float] = (0.5, 8.0),
        capture_factory: Callable[[Any], Any] | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        is_camera = isinstance(target, int)
        is_stream = isinstance(target, str) and target.lower().startswith(STREAM_SCHEMES)
        self.live = (is_camera or is_stream) if live is None else live
        self._is_file = not (is_camera or is_stream)
        if is_camera:
            what = f"camera {target}"
        elif is_stream:
            what = f"stream {target}"
        else:
            what = f"video {target}"
        self.name = name or (f"camera {target}" if is_camera else str(target))
        self._what = what
        self._target = target if is_camera else str(target)
        self._factory = capture_factory or cv2.VideoCapture
        self.reconnect = bool(reconnect and self.live)
        self.reconnect_attempts = reconnect_attempts
        self.reconnect_timeout_s = reconnect_timeout_s
        self.reconnect_delays = reconnect_delays
        self._sleep = sleep if sleep is not None else self._sleep_unless_closed
        self._clock = clock
        self.reconnects = 0  # times the capture came back after it was lost
        self._cap = self._factory(self._target)
        if not self._cap.isOpened():
            self._cap.release()
            if is_camera:
                raise SourceError(f"cannot open {what}: no such camera (or it is busy)")
            raise SourceError(f"cannot open {what}: OpenCV cannot read it (corrupt or unsupported)")
        if is_camera:
            if width:
                self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            if height:
                self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            if fps:
                self._cap.set(cv2.CAP_PROP_FPS, fps)
        if self.live:
            self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # a hint; some backends ignore it
        reported = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = reported if 0.0 < reported < 1000.0 else None
        self._reads = 0
        self._pending = self._read()
        if self._pending is None:
            self._cap.release()
            raise SourceError(f"{what} opened but returned no frames")

    def _read(self) -> tuple[np.ndarray, int] | None:
        ok, image = self._cap.read()
        if not ok or image is None:
            return None
        if not self._is_file:
            stamp = time.time_ns()
        elif self.fps:
            stamp = round(self._reads * 1e9 / self.fps)
        else:
            stamp = int(self._cap.get(cv2.CAP_PROP_POS_MSEC) * 1e6)
        self._reads += 1
        return bgr_to_rgb(image), stamp

    def _frames(self) -> Iterator[Frame]:
        while not self._closed:
            item, self._pending = self._pending, None
            if item is None:
                item = self._read()
            if item is None and self.reconnect and not self._closed:
                item = self._reconnect()
            if item is None:
                return
            yield self._frame(item[0], self.name, item[1])

    def _sleep_unless_closed(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._closed and (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))

    def _reconnect(self) -> tuple[np.ndarray, int] | None:
        """Release the lost capture and open it again with capped exponential backoff; the
        first frame read again, or None when closed meanwhile. Raises :class:`SourceError`."""
        self._cap.release()
        first, cap_s = self.reconnect_delays
        delay, start, attempts = first, self._clock(), 0
        while attempts < self.reconnect_attempts:
            if self._clock() - start + delay > self.reconnect_timeout_s:
                break
            self._sleep(delay)
            if self._closed:
                return None
            attempts += 1
            cap = self._factory(self._target)
            if cap.isOpened():
                self._cap = cap
                item = self._read()
                if self._closed:
                    cap.release()
                    return None
                if item is not None:
                    self.reconnects += 1
                    return item
            cap.release()
            delay = min(delay * 2, cap_s)
        waited = self._clock() - start
        self._closed = True  # the capture is already released
        raise SourceError(
            f"{self._what} lost: no frame after {attempts} reconnect attempts in {waited:.1f} s"
        )

    def _release(self) -> None:
        self._cap.release()


#: (height, width) of a frame -> (height, width) a model resizes it to before padding: a loaded
#: model's own rule, :meth:`edgekit.runtime.preprocess.Preprocessor.resized_hw`.
ResizedHW = Callable[[tuple[int, int]], tuple[int, int]]


class LoresSource(BaseSource):
    """Wraps a source to add ``Frame.lores``: each frame resized to what a model input needs, in
    whichever thread reads the source (the loop's capture thread), as picamera2's low-resolution
    stream does on a Pi. The model's own preprocessing then has no resize left to do, so
    inference overlaps it. Frames that already have ``lores`` pass through.

    ``size`` is the loaded model's resize rule (``model.preprocessor.resized_hw``, what the app
    passes: the model decides its input size once), or a model input ``(height, width)`` with
    ``resize_mode`` ("resize" stretches to it; "letterbox" keeps the aspect ratio, the model
    pads).
    """

    def __init__(
        self,
        source: Source,
        size: ResizedHW | tuple[int, int],
        *,
        resize_mode: str = "resize",
        interpolation: int = cv2.INTER_LINEAR,
    ) -> None:
        super().__init__()
        if resize_mode not in ("resize", "letterbox"):
            raise SourceError(f"resize_mode must be 'resize' or 'letterbox', got {resize_mode!r}")
        self.inner = source
        self.name = source.name
        self.live = source.live
        self.fps = getattr(source, "fps", None)
        if callable(size):
            self._resized_hw = size
        else:
            input_hw = (int(size[0]), int(size[1]))
            self._resized_hw = lambda hw: make_transform(resize_mode, hw, input_hw).resized_hw
        self.interpolation = interpolation
        self._sizes: dict[tuple[int, int], tuple[int, int]] = {}

    def lores_hw(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """(height, width) the model would resize a ``frame_hw`` frame to before any padding."""
        if frame_hw not in self._sizes:
            h, w = self._resized_hw(frame_hw)
            self._sizes[frame_hw] = (int(h), int(w))
        return self._sizes[frame_hw]

    def _frames(self) -> Iterator[Frame]:
        for frame in self.inner:
            if frame.lores is None:
                h, w = self.lores_hw((frame.height, frame.width))
                small = cv2.resize(frame.image, (w, h), interpolation=self.interpolation)
                frame = dataclasses.replace(frame, lores=small)
            yield frame
            if self._closed:
                return

    def _release(self) -> None:
        self.inner.close()


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8; :class:`SourceError` names the file when it cannot."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"no such image: {path}")
    image = decode_rgb(path)
    if image is None:
        raise SourceError(f"cannot read image {path}: not an image OpenCV can decode")
    return image


class ImageSource(BaseSource):
    """A fixed list of image files, each read when reached; ``Frame.source`` is its own path."""

    def __init__(self, paths: Sequence[str | Path], *, name: str | None = None, repeat: int = 1):
        super().__init__()
        if not paths:
            raise SourceError(f"no images in {name or 'the given list'}")
        if repeat < 1:
            raise SourceError(f"repeat must be >= 1, got {repeat}")
        self.paths = tuple(Path(p) for p in paths)
        self.repeat = repeat
        self.name = name or (str(self.paths[0]) if len(self.paths) == 1 else "images")

    def __len__(self) -> int:
        return len(self.paths) * self.repeat

    def _frames(self) -> Iterator[Frame]:
        for _ in range(self.repeat):
            for path in self.paths:
                if self._closed:
                    return
                yield self._frame(read_image(path), str(path), time.time_ns())


def _package_dir(module: str) -> Path | None:
    """Folder of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def sample_images() -> list[Path]:
    """Paths of the real photos shipped in installed packages (matplotlib, scikit-image)."""
    found = []
    for _dist, module, relative in SAMPLE_PHOTOS:
        root = _package_dir(module)
        if root is not None and (root / relative).is_file():
            found.append(root / relative)
    return found


# ``Source.name`` of the generated stand-in, shown in the run's first line.
GENERATED_SAMPLE_NAME = "sample (a generated test card: no photo package installed)"


def sample_source(*, repeat: int = 1) -> BaseSource:
    """The built-in ``sample`` source: photos from matplotlib and scikit-image, if installed;
    otherwise one generated test card (a minimal Raspberry Pi install has neither package), so
    ``edgekit detect`` with no arguments still runs."""
    paths = sample_images()
    if not paths:
        from edgekit.io.testcard import ArraySource, draw_test_card

        return ArraySource([draw_test_card()], name=GENERATED_SAMPLE_NAME, repeat=repeat)
    return ImageSource(paths, name="sample", repeat=repeat)


def picamera2_available() -> bool:
    """True when the picamera2 module can be imported (Raspberry Pi OS, python3-picamera2)."""
    try:
        return importlib.util.find_spec("picamera2") is not None
    except (ImportError, ValueError):
        return False


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _images_in(paths: list[str]) -> list[Path]:
    return sorted(Path(p) for p in paths if Path(p).suffix.lower() in IMAGE_SUFFIXES)


def _probe_is_image(path: Path) -> bool:
    data = np.fromfile(str(path), dtype=np.uint8, count=64 * 1024 * 1024)
    return data.size > 0 and cv2.imdecode(data, cv2.IMREAD_COLOR) is not None


@dataclasses.dataclass(frozen=True)
class SourceOptions:
    """What :func:`open_source` was asked besides the source itself."""

    width: int | None = None
    height: int | None = None
    repeat: int = 1
    live: bool | None = None
    reconnect: bool = False
    picamera2: dict[str, Any] = dataclasses.field(default_factory=dict)


def _open_picamera2(text: str, options: SourceOptions) -> BaseSource:
    if not picamera2_available():
        raise SourceError(
            "picamera2 is not installed",
            hint="on Raspberry Pi OS: sudo apt install python3-picamera2 and a venv made with "
            "--system-site-packages",
        )
    from edgekit.io.picamera import Picamera2Source

    return Picamera2Source(0, **options.picamera2)


def _open_stream(text: str, options: SourceOptions) -> BaseSource:
    live = True if options.live is None else options.live
    return VideoSource(text, live=live, reconnect=options.reconnect)


#: Sources named by what the user types: a name, or a URL scheme (ending in ``://``) -> how it
#: opens (the text as typed, the other options). Camera indices, files, folders and globs are
#: told apart by :func:`open_source` itself. A new kind of source: its module, and a row here.
NAMED_SOURCES: dict[str, Callable[[str, SourceOptions], BaseSource]] = {
    "sample": lambda text, options: sample_source(repeat=options.repeat),
    "picamera2": _open_picamera2,
    **{scheme: _open_stream for scheme in STREAM_SCHEMES},
}


def open_source(
    source: str | int | Path | None = "sample",
    *,
    camera: bool | int | None = None,
    width: int | None = None,
    height: int | None = None,
    repeat: int = 1,
    live: bool | None = None,
    reconnect: bool = False,
    resized_hw: ResizedHW | None = None,
    **picamera2_options: Any,
) -> BaseSource:
    """Open what the user named.

    - ``camera=True`` (index 0) or ``camera=N``: picamera2 when it is installed (a Raspberry Pi),
      otherwise OpenCV device N. ``"picamera2"`` asks for picamera2 explicitly.
    - an int or a digit string: OpenCV device index (e.g. a USB webcam).
    - a name or URL of :data:`NAMED_SOURCES`: ``"sample"`` (or ``None``: photos shipped inside
      matplotlib / scikit-image, a generated test card when neither is installed),
      ``"picamera2"``, ``rtsp://``, ``http(s)://`` …: an OpenCV network stream (live).
    - an existing file: image or video, by extension, else by trying to decode it as an image.
    - a folder (its images, sorted) or a glob pattern (``"shots/*.jpg"``).

    ``repeat`` loops image sources; ``live`` overrides the guess (e.g. treat a file as a camera);
    ``reconnect``: a live OpenCV camera or stream that stops giving frames is opened again with
    backoff (see :class:`VideoSource`) instead of ending; ``resized_hw``: the loaded model's
    resize rule, which sizes a Pi camera's low-resolution stream
    (:func:`~edgekit.io.picamera.lores_size_for`); other keywords go to
    :class:`~edgekit.io.picamera.Picamera2Source`.
    """
    if resized_hw is not None and "lores_size" not in picamera2_options:
        picamera2_options["lores_for"] = resized_hw
    if camera is not None and camera is not False:
        index = 0 if camera is True else int(camera)
        if picamera2_available():
            from edgekit.io.picamera import Picamera2Source

            return Picamera2Source(index, **picamera2_options)
        return VideoSource(index, width=width, height=height, live=live, reconnect=reconnect)
    if source is None:
        source = "sample"
    if isinstance(source, bool):
        raise SourceError(f"not a source: {source!r}")
    if isinstance(source, int):
        return VideoSource(source, width=width, height=height, live=live, reconnect=reconnect)
    text = str(source).strip()
    if text.isdigit():
        return VideoSource(int(text), width=width, height=height, live=live, reconnect=reconnect)
    key = text.lower()
    for name, opener in NAMED_SOURCES.items():
        if key == name or (name.endswith("://") and key.startswith(name)):
            options = SourceOptions(width, height, repeat, live, reconnect, picamera2_options)
            return opener(text, options)
    path = Path(text).expanduser()
    if path.is_dir():
        images = _images_in([str(p) for p in path.iterdir()])
        if not images:
            raise SourceError(f"no images in folder {path}")
        return ImageSource(images, name=str(path), repeat=repeat)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES or (suffix not in VIDEO_EXTENSIONS and _probe_is_image(path)):
            return ImageSource([path], repeat=repeat)
        return VideoSource(path, live=live)
    if _is_glob(text):
        images = _images_in(globlib.glob(str(path), recursive=True))
        if not images:
            raise SourceError(f"no images match {text}")
        return ImageSource(images, name=text, repeat=repeat)
    raise SourceError(f"no such file, folder or camera: {text}")
