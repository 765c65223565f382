"""Where results go: a window, an annotated video file, JSON lines, a console summary.

Every sink here implements :class:`~edgekit.core.types.Sink` through :class:`BaseSink`:
``write(result, image=None)``, ``close()`` (idempotent), a context manager. Sinks that show the
annotated frame (:class:`VideoSink`, :class:`WindowSink`) set ``wants_image = True``: the loop
draws each frame once for all of them and passes the image (written outside a loop, with
``write(result)`` alone, they get :func:`~edgekit.io.overlay.render`'s drawing, what the loop
draws by default). A sink sets ``stop_requested`` when the user asks to stop (a window closed,
``q`` pressed); the loop polls it. ``name`` says which output it is (``"jsonl out.jsonl"``) in
warnings and in the run's summary.

A file output is opened (or, for a video, checked writable) when the sink is made, so an
output that cannot be written fails before anything runs; a write that fails later raises
:class:`~edgekit.errors.SinkError` (the loop disables that sink and counts what it lost).

JSON lines use :func:`result_to_json`: pixel coordinates of the original frame.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from edgekit.core.types import FrameResult, pick_stages, to_pixels
from edgekit.errors import SinkError
from edgekit.io import overlay
from edgekit.io.base import Closing

#: The stages a JSON line carries (core.types.STAGES has what each means).
JSONL_STAGES = pick_stages("capture", "preprocess", "invoke", "postprocess", "total")

# Video container -> FourCC that opencv-python's FFmpeg build can encode (avc1 cannot).
FOURCC_BY_SUFFIX: dict[str, str] = {
    ".mp4": "mp4v",
    ".m4v": "mp4v",
    ".mov": "mp4v",
    ".avi": "MJPG",
    ".mkv": "XVID",
}


def _round(value: float, digits: int) -> float | None:
    """Rounded, or None (JSON ``null``) for NaN / infinity, so every line is strict JSON."""
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def result_to_json(result: FrameResult) -> dict[str, Any]:
    """One frame as a JSON-ready dict (the JSONL schema), boxes and keypoints in frame pixels.

    ``{"frame", "source", "width", "height", "detections": [{"label", "class_id", "score",
    "box": [x0, y0, x1, y1], "track_id"?}], "poses": [{"score", "keypoints": [[x, y, score],
    ...]}], "classes": [{"label", "class_id", "score"}], "timings_ms": {"capture",
    "preprocess", "invoke", "postprocess", "total"}}``. ``detections`` / ``poses`` / ``classes``
    appear when the frame has any; timings that were not measured are left out. A NaN or
    infinite number (a broken model output) is written as ``null``.
    """
    frame = result.frame
    w, h = frame.width, frame.height
    out: dict[str, Any] = {
        "frame": int(frame.index),
        "source": str(frame.source),
        "width": w,
        "height": h,
    }
    if result.detections:
        dets = []
        for d in result.detections:
            item: dict[str, Any] = {
                "label": d.label,
                "class_id": int(d.class_id),
                "score": _round(d.score, 4),
                "box": [_round(v, 1) for v in to_pixels(d.box, w, h)],
            }
            if d.track_id is not None:
                item["track_id"] = int(d.track_id)
            dets.append(item)
        out["detections"] = dets
    if result.poses:
        out["poses"] = [
            {
                "score": _round(p.score, 4),
                "keypoints": [
                    [_round(k.x * w, 1), _round(k.y * h, 1), _round(k.score, 4)]
                    for k in p.keypoints
                ],
            }
            for p in result.poses
        ]
    if result.classes:
        out["classes"] = [
            {"label": c.label, "class_id": int(c.class_id), "score": _round(c.score, 4)}
            for c in result.classes
        ]
    out["timings_ms"] = {
        k: _round(result.timings[k], 3) for k in JSONL_STAGES if k in result.timings
    }
    return out


class BaseSink(Closing):
    """The :class:`~edgekit.core.types.Sink` protocol with its defaults, context manager
    plumbing and an idempotent ``close``."""

    wants_image = False
    stop_requested = False

    @property
    def name(self) -> str:
        """What the output is, for warnings and the run's summary."""
        return repr(self)

    def __init__(self) -> None:
        self._closed = False

    def write(self, result: FrameResult, image: np.ndarray | None = None) -> None:
        if self._closed:
            raise SinkError(f"{self!r} is closed")
        self._write(result, image)

    def _write(self, result: FrameResult, image: np.ndarray | None) -> None:
        raise NotImplementedError

    @staticmethod
    def _image(result: FrameResult, image: np.ndarray | None) -> np.ndarray:
        """The annotated frame: the loop's ``image``, or (written outside a loop) the drawing
        the loop makes by default."""
        return image if image is not None else overlay.render(result)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def _close(self) -> None:
        """Flush and release; called once."""


class JsonlSink(BaseSink):
    """One JSON object per frame and line, flushed after each line (``"-"`` is stdout)."""

    def __init__(self, path: str | Path | IO[str]) -> None:
        super().__init__()
        self._owns = False
        if hasattr(path, "write"):
            self._fh: IO[str] = path  # type: ignore[assignment]
            self.path = getattr(path, "name", "<stream>")
        elif str(path) == "-":
            self._fh, self.path = sys.stdout, "-"
        else:
            self.path = Path(path)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                why = exc.strerror or str(exc)
                if isinstance(exc, FileExistsError | NotADirectoryError):
                    why = f"{exc.filename or self.path.parent} is not a folder"
                raise SinkError(f"cannot write JSON lines to {self.path}: {why}") from exc
            self._owns = True
        self.frames = 0

    @property
    def name(self) -> str:
        return f"jsonl {self.path}"

    def _write(self, result: FrameResult, image: np.ndarray | None) -> None:
        try:
            self._fh.write(json.dumps(result_to_json(result), separators=(",", ":")) + "\n")
            self._fh.flush()
        except OSError as exc:
            raise SinkError(f"cannot write JSON lines to {self.path}: {exc.strerror}") from exc
        self.frames += 1

    def _close(self) -> None:
        if self._owns:
            self._fh.close()
        else:
            self._fh.flush()

    def __repr__(self) -> str:
        return f"JsonlSink({str(self.path)!r})"


def _check_writable(path: Path, what: str) -> None:
    """Raise :class:`SinkError` naming ``path`` and the reason when it cannot be opened for
    writing (a folder, a read-only file system, no permission). Opens it for appending, so an
    existing file is not truncated, and removes a file this check created."""
    existed = os.path.lexists(path)
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise SinkError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc
    if not existed:
        with contextlib.suppress(OSError):
            path.unlink()


class VideoSink(BaseSink):
    """An annotated video file. The writer opens at the first frame's size (later frames of
    another size are resized to it); the codec follows the extension (mp4v for .mp4, MJPG for
    .avi, XVID for .mkv) unless ``fourcc`` is given. Nothing is written before the first frame.
    """

    wants_image = True

    def __init__(
        self,
        path: str | Path,
        *,
        fps: float | None = None,
        fourcc: str | None = None,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if fourcc is None:
            if suffix not in FOURCC_BY_SUFFIX:
                raise SinkError(
                    f"cannot write video {self.path}: unknown extension {suffix or '(none)'}",
                    hint="use " + ", ".join(sorted(FOURCC_BY_SUFFIX)),
                )
            fourcc = FOURCC_BY_SUFFIX[suffix]
        if len(fourcc) != 4:
            raise SinkError(f"FourCC must be 4 characters, got {fourcc!r}")
        if not self.path.parent.is_dir():
            why = "is not a folder" if self.path.parent.exists() else "does not exist"
            raise SinkError(f"cannot write video {self.path}: {self.path.parent} {why}")
        _check_writable(self.path, "video")
        self.fourcc = fourcc
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self._writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None  # (width, height)
        self.frames = 0

    @property
    def name(self) -> str:
        return f"video {self.path}"

    def _open(self, width: int, height: int) -> None:
        writer = cv2.VideoWriter(
            str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (width, height)
        )
        if not writer.isOpened():
            writer.release()
            raise SinkError(
                f"cannot write video {self.path}: OpenCV could not open a {self.fourcc} encoder",
                hint="try .avi (MJPG) or .mp4 (mp4v)",
            )
        self._writer, self.size = writer, (width, height)

    def _write(self, result: FrameResult, image: np.ndarray | None) -> None:
        image = self._image(result, image)
        if self._writer is None or self.size is None:
            self._open(image.shape[1], image.shape[0])
        size = self.size
        if (image.shape[1], image.shape[0]) != size:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))  # type: ignore[union-attr]
        self.frames += 1

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.release()

    def __repr__(self) -> str:
        return f"VideoSink({str(self.path)!r}, {self.fourcc})"


def gui_available(build_information: str | None = None) -> bool:
    """True when this OpenCV was built with a GUI backend (not opencv-python-headless)."""
    info = cv2.getBuildInformation() if build_information is None else build_information
    for line in info.splitlines():
        key, _, value = line.strip().partition(":")
        if key.strip() == "GUI":
            return value.strip().upper() not in ("", "NONE", "NO")
    return False


class WindowSink(BaseSink):
    """An OpenCV window showing the annotated frames; ``q`` / Esc or closing it stops the loop.

    Needs an OpenCV built with a GUI (``opencv-python``, not ``-headless``) and a display.
    """

    wants_image = True

    def __init__(self, title: str = "edgekit") -> None:
        super().__init__()
        if not gui_available():
            raise SinkError(
                "cannot open a window: this OpenCV has no GUI support (opencv-python-headless)",
                hint="pip install opencv-python, or save with --save out.mp4",
            )
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise SinkError(
                f"cannot open a window ({exc.msg.strip()}); is there a display?"
            ) from exc
        self.title = title
        self.stop_requested = False

    @property
    def name(self) -> str:
        return f"window {self.title}"

    def _write(self, result: FrameResult, image: np.ndarray | None) -> None:
        image = self._image(result, image)
        cv2.imshow(self.title, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1) & 0xFF
        closed = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        if key in (ord("q"), 27) or closed:
            self.stop_requested = True

    def _close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass


def summarize(result: FrameResult, limit: int = 3) -> str:
    """``"2 detections: person 0.72, tie 0.41"`` — counts per kind and the best few by score."""
    parts = []
    for items, kind in (
        (result.detections, "detections"),
        (result.poses, "poses"),
        (result.classes, "classes"),
    ):
        if not items:
            continue
        best = sorted(items, key=lambda item: -item.score)[:limit]
        names = ", ".join(f"{getattr(i, 'label', '') or kind[:-1]} {i.score:.2f}" for i in best)
        more = ", ..." if len(items) > limit else ""
        parts.append(f"{len(items)} {kind}: {names}{more}")
    return "; ".join(parts)


class ConsoleSink(BaseSink):
    """A one-line summary every ``every`` frames, and totals at close."""

    def __init__(
        self,
        every: int = 30,
        *,
        stream: IO[str] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__()
        if every < 1:
            raise SinkError(f"ConsoleSink every must be >= 1, got {every}")
        self.every = every
        self._stream = stream
        self._clock = clock
        self._start: float | None = None
        self._window_start = 0.0
        self._window_frame = 0
        self.frames = 0
        self._objects = 0

    @property
    def name(self) -> str:
        return "console"

    def _print(self, text: str) -> None:
        print(text, file=self._stream or sys.stderr, flush=True)

    def _write(self, result: FrameResult, image: np.ndarray | None) -> None:
        now = self._clock()
        self.frames += 1
        if self._start is None:
            self._start = self._window_start = now
            self._window_frame = self.frames
        found = len(result.detections) + len(result.poses) + len(result.classes)
        self._objects += found
        if self.frames % self.every == 0:
            span = now - self._window_start
            intervals = self.frames - self._window_frame
            fps = f"{intervals / span:5.1f} fps" if span > 0 else "  -  fps"
            what = summarize(result)
            timing = overlay.status_text(result)
            self._print(f"frame {result.frame.index:6d}  {fps}  {timing}  {what or 'nothing'}")
            self._window_start, self._window_frame = now, self.frames

    def _close(self) -> None:
        if self._start is None:
            self._print("0 frames")
            return
        span = self._clock() - self._start
        rate = f", {self.frames / span:.1f} fps" if span > 0 else ""
        self._print(f"{self.frames} frames{rate}, {self._objects} results in all")
