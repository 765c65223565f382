"""The real-time loop: capture, inference and output overlap in three threads.

::

    capture thread ──slot/queue──▶ inference thread ──queue──▶ output thread (render + sinks)

- A *live* source (camera, stream) feeds a one-item slot that the capture thread overwrites:
  inference always gets the newest frame and frames it could not keep up with are counted as
  ``dropped``. Any other source feeds a bounded blocking queue, so every frame is processed.
- The calling thread only supervises: it installs SIGINT/SIGTERM handlers (when it is the main
  thread), watches ``stop_event`` and waits. A stop request ends capture at once, discards frames
  not yet inferred, and writes every result already produced, so a JSONL file ends on a complete
  line for the last frame. Sinks and the source are always closed and threads joined; an exception
  raised in any thread is re-raised here after that cleanup.
- ``pipelined=False`` does capture → step → render → write one frame at a time in the calling
  thread, for comparison.

The loop knows nothing of models or cameras: ``step(frame) -> FrameResult`` does the inference
(and may add its own timings, e.g. "preprocess", "invoke", "postprocess").

Timings, in milliseconds, added to each ``FrameResult.timings`` before it reaches the sinks
(:data:`edgekit.core.types.STAGES` lists every stage and its one meaning):

- ``capture``: the source producing the frame (read + decode + colour conversion);
- ``wait``: from the frame being captured to the step starting on it (queueing);
- ``step``: the whole ``step(frame)`` call;
- ``total``: from the start of the frame's capture to its result being ready (capture + wait +
  step): the latency of a result, not counting drawing or writing.

``LoopStats.stages`` also holds ``render`` (drawing the overlay once for the sinks that show
it) and ``write`` (all sinks), measured after the sinks got the result.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.core.latency import LatencyStats
from edgekit.core.types import Frame, FrameResult, Sink, pick_stages
from edgekit.errors import SinkError

Step = Callable[[Frame], FrameResult]
Render = Callable[[FrameResult], np.ndarray]

_EMPTY = object()  # nothing arrived before the timeout
_END = object()  # the producer finished
_SKIPPED = object()  # the source gave something that is not a usable frame
_log = logging.getLogger("edgekit.loop")
_POLL_S = 0.05
_JOIN_S = 5.0
# Per-stage timing samples kept for LoopStats: the most recent ones only, so a camera running for
# days holds a bounded ~10 MB instead of ~215 bytes per frame forever.
MAX_TIMING_SAMPLES = 50_000
#: The stages :meth:`LoopStats.summary` shows (core.types.STAGES has what each means).
SUMMARY_STAGES = pick_stages("capture", "invoke", "step", "total")


@dataclass(frozen=True)
class LoopStats:
    """What a run did: frames written to the sinks, live frames dropped, wall time and FPS
    (``frames / elapsed_s``), per-stage timing distributions, and why it stopped
    ("end", "max_frames", "duration", "stop_event", "SIGINT", "SIGTERM", "sink", "output_error",
    "error").

    ``skipped_frames`` counts what the source gave that was no usable frame (None, an empty
    image, not uint8, not (H, W, 3)): skipped before the step. ``sink_errors`` maps each sink
    disabled by a write error (a full disk, an unwritable file), or that failed to close, to
    that error's message; ``lost_frames`` maps each sink disabled during the run to the frames
    it did not get (the one that failed and every later one)."""

    frames: int
    dropped: int
    elapsed_s: float
    fps: float
    stages: dict[str, LatencyStats] = field(default_factory=dict)
    pipelined: bool = True
    stopped_by: str = "end"
    skipped_frames: int = 0
    sink_errors: dict[str, str] = field(default_factory=dict)
    lost_frames: dict[str, int] = field(default_factory=dict)

    @property
    def outputs_failed(self) -> bool:
        """True when any output was disabled or failed to close: something was not written."""
        return bool(self.sink_errors)

    def summary(self) -> str:
        mode = "pipelined" if self.pipelined else "serial"
        parts = [
            f"{self.frames} frames in {self.elapsed_s:.2f} s = {self.fps:.1f} fps ({mode})",
            f"dropped {self.dropped}",
        ]
        for name in SUMMARY_STAGES:
            if name in self.stages:
                s = self.stages[name]
                parts.append(f"{name} p50 {s.p50_ms:.1f} ms")
        if self.skipped_frames:
            parts.append(f"skipped {self.skipped_frames} bad frames")
        for name in self.sink_errors:
            lost = self.lost_frames.get(name)
            parts.append(
                f"disabled {name}" + (f" (lost {lost} frames)" if lost is not None else "")
            )
        return ", ".join(parts) + f"; stopped by {self.stopped_by}"


def _usable_image(image: Any) -> bool:
    return (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and image.ndim == 3
        and image.shape[2] == 3
        and image.size > 0
    )


def usable_frame(frame: Any) -> bool:
    """True for a :class:`Frame` whose image (and ``lores``, when present) is a non-empty RGB
    uint8 (H, W, 3) array: what the loop hands to the step; anything else is skipped."""
    return (
        isinstance(frame, Frame)
        and _usable_image(frame.image)
        and (frame.lores is None or _usable_image(frame.lores))
    )


class _PartialSink:
    """An object with ``write(result)`` and ``close()`` (a test's list, a user's callback) seen
    through the whole :class:`~edgekit.core.types.Sink` protocol: what it lacks defaults to its
    repr as ``name``, no image, never asking to stop."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink

    @property
    def name(self) -> str:
        name = getattr(self.sink, "name", None)
        return str(name) if name else repr(self.sink)

    @property
    def wants_image(self) -> bool:
        return bool(getattr(self.sink, "wants_image", False))

    @property
    def stop_requested(self) -> bool:
        return bool(getattr(self.sink, "stop_requested", False))

    def write(self, result: FrameResult, image: np.ndarray | None = None) -> None:
        if image is None:
            self.sink.write(result)
        else:
            self.sink.write(result, image)

    def close(self) -> None:
        self.sink.close()


def as_sink(sink: Any) -> Sink:
    """``sink`` itself when it implements the whole :class:`~edgekit.core.types.Sink`
    protocol, else a view of it that does (see :class:`_PartialSink`)."""
    return sink if isinstance(sink, Sink) else _PartialSink(sink)


class _Channel:
    """A bounded hand-off between two threads.

    ``latest=True`` is the newest-frame-wins slot: one item, ``put`` never blocks and replaces an
    item nobody took yet (counted in ``dropped``). Otherwise ``put`` blocks while ``capacity``
    items wait, until one is taken or ``cancel()`` returns true.
    """

    def __init__(self, capacity: int, *, latest: bool = False) -> None:
        self._items: collections.deque[Any] = collections.deque()
        self._capacity = 1 if latest else max(1, capacity)
        self._latest = latest
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, item: Any, cancel: Callable[[], bool]) -> bool:
        with self._cond:
            if self._latest:
                if self._items:
                    self._items.popleft()
                    self.dropped += 1
            else:
                while len(self._items) >= self._capacity:
                    if cancel():
                        return False
                    self._cond.wait(_POLL_S)
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout: float = _POLL_S) -> Any:
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if self._items:
                item = self._items.popleft()
                self._cond.notify_all()
                return item
            return _END if self._closed else _EMPTY

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class _Run:
    """The state one call of :func:`run` shares between its threads."""

    def __init__(
        self,
        source: Iterable[Frame],
        step: Step,
        sinks: Sequence[Sink],
        *,
        clock: Callable[[], float],
        max_frames: int | None,
        duration: float | None,
        render: Render | None,
        isolate_sink_errors: bool = True,
        stop_on_sink_error: bool = False,
    ) -> None:
        self.source = source
        self.step = step
        self.sinks = list(sinks)  # the sinks still written to
        self.isolate_sink_errors = isolate_sink_errors
        self.stop_on_sink_error = stop_on_sink_error
        self.disabled: list[Sink] = []  # sinks dropped after a write error (already closed)
        self.sink_errors: dict[str, str] = {}
        self.disabled_at: dict[str, int] = {}  # sink name -> frames written before it failed
        self.skipped = 0
        self.clock = clock
        self.max_frames = max_frames
        self.duration = duration
        self.render = render
        self.stop = threading.Event()  # finish: no new frames, write what was inferred
        self.abort = threading.Event()  # an error: everything stops as soon as it can
        self.stopped_by = "end"
        self.errors: list[BaseException] = []
        self.samples: dict[str, collections.deque[float]] = collections.defaultdict(
            lambda: collections.deque(maxlen=MAX_TIMING_SAMPLES)
        )
        self.frames = 0
        self.dropped = 0
        self.start = 0.0
        self._lock = threading.Lock()

    # -- control -------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        with self._lock:
            if not self.stop.is_set():
                self.stopped_by = reason
                self.stop.set()

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            self.errors.append(exc)
            self.stopped_by = "error"
            self.stop.set()
            self.abort.set()

    def interrupted(self) -> bool:
        """A stop that discards frames not yet inferred (a signal, stop_event, a sink, an error);
        reaching ``max_frames`` / ``duration`` at capture lets queued frames finish."""
        return self.stop.is_set() and self.stopped_by not in ("max_frames", "duration")

    def limits_reached(self, captured: int | None) -> bool:
        """True (and the reason recorded) when ``max_frames`` or ``duration`` ends the capture.
        ``captured`` is None where frames may still be dropped (the inference stage counts)."""
        if self.max_frames is not None and captured is not None and captured >= self.max_frames:
            self.request_stop("max_frames")
            return True
        if self.duration is not None and self.clock() - self.start >= self.duration:
            self.request_stop("duration")
            return True
        return False

    # -- stages --------------------------------------------------------------------------
    def capture_one(self, frames: Iterator[Frame]) -> tuple[Frame, float, float] | object | None:
        """The next frame with its capture times; None at the end of the source, ``_SKIPPED``
        (and counted) for anything that is no usable frame."""
        t0 = self.clock()
        frame = next(frames, _END)
        t1 = self.clock()
        if frame is _END:
            return None
        if not usable_frame(frame):
            self.skipped += 1
            return _SKIPPED
        return (frame, t0, t1)

    def infer_one(self, item: tuple[Frame, float, float]) -> FrameResult:
        frame, t0, t1 = item
        ts = self.clock()
        result = self.step(frame)
        te = self.clock()
        if not isinstance(result, FrameResult):
            raise TypeError(f"step returned {type(result).__name__}, expected FrameResult")
        timings = dict(result.timings)
        timings.update(
            capture=(t1 - t0) * 1e3,
            wait=(ts - t1) * 1e3,
            step=(te - ts) * 1e3,
            total=(te - t0) * 1e3,
        )
        return dataclasses.replace(result, timings=timings)

    def output_one(self, result: FrameResult) -> None:
        t0 = self.clock()
        image = None
        if self.render is not None and any(s.wants_image for s in self.sinks):
            image = self.render(result)
        t1 = self.clock()
        for sink in list(self.sinks):
            try:
                if image is not None and sink.wants_image:
                    sink.write(result, image)
                else:
                    sink.write(result)
            except (OSError, SinkError) as exc:
                if not self.isolate_sink_errors:
                    raise
                self.disable_sink(sink, exc)
        t2 = self.clock()
        for key, value in result.timings.items():
            self.samples[key].append(float(value))
        if image is not None:
            self.samples["render"].append((t1 - t0) * 1e3)
        self.samples["write"].append((t2 - t1) * 1e3)
        self.frames += 1
        if any(s.stop_requested for s in self.sinks):
            self.request_stop("sink")

    def disable_sink(self, sink: Sink, exc: BaseException) -> None:
        """Stop writing to a sink that failed (a full disk, an unwritable file): close it quietly,
        record it (with the frames written before) and warn once; the other sinks and the loop
        go on, unless ``stop_on_sink_error`` asks for a stop. When no sink is left the run stops
        too (it would be writing nothing)."""
        name = sink.name
        message = str(exc) or type(exc).__name__
        self.sinks.remove(sink)
        self.disabled.append(sink)
        self.sink_errors[name] = message
        self.disabled_at[name] = self.frames
        with contextlib.suppress(Exception):
            sink.close()
        _log.warning(
            "output %s disabled after a write error at frame %d: %s", name, self.frames, message
        )
        if self.stop_on_sink_error or not self.sinks:
            self.request_stop("output_error")

    def lost_frames(self) -> dict[str, int]:
        """Frames each disabled sink did not get: the one that failed and every later one."""
        return {name: self.frames - done for name, done in self.disabled_at.items()}

    # -- threads -------------------------------------------------------------------------
    def captures(self, count: bool, poll: Callable[[], None] = lambda: None) -> Iterator[Any]:
        """Captured frames until a stop, a limit or the source's end; ``poll`` runs before each.
        ``count``: the captured frames count towards ``max_frames`` here (else at inference)."""
        frames = iter(self.source)
        captured = 0
        while True:
            poll()
            if self.stop.is_set() or self.limits_reached(captured if count else None):
                return
            item = self.capture_one(frames)
            if item is None:
                return
            if item is _SKIPPED:
                continue
            captured += 1
            yield item

    def capture_worker(self, out: _Channel, count: bool) -> None:
        try:
            for item in self.captures(count):
                if not out.put(item, self.stop.is_set):
                    break
        except BaseException as exc:
            self.fail(exc)
        finally:
            out.close()

    def infer_worker(self, inbox: _Channel, out: _Channel) -> None:
        try:
            produced = 0
            while not self.abort.is_set():
                item = inbox.get()
                if item is _EMPTY:
                    continue
                if item is _END or self.interrupted():
                    break
                if not out.put(self.infer_one(item), self.abort.is_set):
                    break
                produced += 1
                if self.max_frames is not None and produced >= self.max_frames:
                    self.request_stop("max_frames")
                    break
        except BaseException as exc:
            self.fail(exc)
        finally:
            out.close()

    def output_worker(self, inbox: _Channel) -> None:
        # Runs until the inference thread closes its channel (it always does, also after an
        # error), so every result produced reaches the sinks unless a sink itself failed.
        try:
            while True:
                item = inbox.get()
                if item is _EMPTY:
                    continue
                if item is _END:
                    break
                self.output_one(item)
        except BaseException as exc:
            self.fail(exc)

    def serial(self, poll: Callable[[], None]) -> None:
        """The one-thread loop: capture → step → render → write, checking for a stop each frame."""
        for item in self.captures(True, poll):
            self.output_one(self.infer_one(item))

    def pipelined(self, latest: bool, queue_size: int, poll: Callable[[], None]) -> None:
        frames_in = _Channel(queue_size, latest=latest)
        results = _Channel(queue_size)
        threads = [
            threading.Thread(
                target=self.capture_worker, args=(frames_in, not latest), name="edgekit-capture"
            ),
            threading.Thread(
                target=self.infer_worker, args=(frames_in, results), name="edgekit-infer"
            ),
            threading.Thread(target=self.output_worker, args=(results,), name="edgekit-output"),
        ]
        for t in threads:
            t.daemon = True  # a camera stuck in read() must not keep the process alive
            t.start()
        try:
            while threads[2].is_alive() and not self.abort.is_set():
                poll()
                threads[2].join(_POLL_S)
        except BaseException:
            self.abort.set()
            self.stop.set()
            raise
        finally:
            self.stop.set()
            if self.abort.is_set():
                frames_in.close()
                results.close()
            for t in threads:
                t.join(_JOIN_S)
            self.dropped = frames_in.dropped


def _close_all(closers: Sequence[Callable[[], None]]) -> BaseException | None:
    """Call every closer even if some fail; return the first exception (or None)."""
    first: BaseException | None = None
    for close in closers:
        try:
            close()
        except Exception as exc:
            if first is None:
                first = exc
    return first


@contextlib.contextmanager
def _signals_stop(run: _Run, enabled: bool) -> Iterator[None]:
    """SIGINT/SIGTERM request a clean stop (a second one raises KeyboardInterrupt).
    Installed only on the main thread, and the previous handlers restored after."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}

    def handler(signum: int, _frame: Any) -> None:
        if run.stop.is_set() and run.stopped_by in ("SIGINT", "SIGTERM"):
            raise KeyboardInterrupt
        run.request_stop(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(
    source: Iterable[Frame],
    step: Step,
    sinks: Sequence[Any] = (),
    *,
    clock: Callable[[], float] = time.perf_counter,
    max_frames: int | None = None,
    duration: float | None = None,
    pipelined: bool = True,
    drop_frames: bool | None = None,
    queue_size: int = 2,
    stop_event: threading.Event | None = None,
    install_signal_handlers: bool = True,
    render: Render | None = None,
    isolate_sink_errors: bool = True,
    stop_on_sink_error: bool = False,
) -> LoopStats:
    """Run ``step`` on every frame of ``source`` and hand each result to every sink.

    ``source``: an iterable of :class:`Frame` (``.live`` and ``.close()`` used when present).
    ``sinks``: :class:`~edgekit.core.types.Sink` objects (or any with ``write(result)`` and
    ``close()``: :func:`as_sink`); the loop alone draws: those with ``wants_image`` get
    ``write(result, image)`` with the frame drawn once by ``render`` (default:
    :func:`edgekit.io.overlay.render` when such a sink is present).
    ``max_frames`` / ``duration`` (seconds of ``clock``) end the run; ``drop_frames`` (default:
    ``source.live``) chooses newest-frame-wins over processing every frame; ``queue_size`` bounds
    the queues of the pipelined mode. The source and all sinks are closed when ``run`` returns or
    raises. Returns :class:`LoopStats`.

    ``isolate_sink_errors`` (default): a sink whose ``write`` raises ``OSError`` or
    :class:`SinkError` is closed and dropped with one warning (logger ``edgekit.loop``) and
    recorded in ``LoopStats.sink_errors`` and ``lost_frames``; the loop and the other sinks go
    on, or, with ``stop_on_sink_error`` (and always when no sink is left), the run stops as on
    a signal (results already inferred still reach the other sinks; ``stopped_by`` is
    "output_error"). A sink whose ``close`` raises such an
    error is recorded in ``sink_errors`` too, so the stats are still returned.
    ``isolate_sink_errors=False``: the first such error is raised and ends the run.
    Frames that are no usable RGB uint8 image are skipped and counted (``skipped_frames``).
    """
    if max_frames is not None and max_frames < 0:
        raise ValueError(f"max_frames must be >= 0, got {max_frames}")
    if duration is not None and duration < 0:
        raise ValueError(f"duration must be >= 0, got {duration}")
    if queue_size < 1:
        raise ValueError(f"queue_size must be >= 1, got {queue_size}")
    sinks = [as_sink(s) for s in sinks]
    if render is None and any(s.wants_image for s in sinks):
        from edgekit.io.overlay import render as default_render

        render = default_render
    latest = bool(getattr(source, "live", False)) if drop_frames is None else drop_frames
    state = _Run(
        source,
        step,
        sinks,
        clock=clock,
        max_frames=max_frames,
        duration=duration,
        render=render,
        isolate_sink_errors=isolate_sink_errors,
        stop_on_sink_error=stop_on_sink_error,
    )

    def poll() -> None:
        if stop_event is not None and stop_event.is_set():
            state.request_stop("stop_event")

    def closer(sink: Sink) -> Callable[[], None]:
        def close() -> None:
            if any(sink is d for d in state.disabled):  # those were closed already
                return
            try:
                sink.close()
            except (OSError, SinkError) as exc:
                if not isolate_sink_errors:
                    raise
                name = sink.name
                message = f"on close: {str(exc) or type(exc).__name__}"
                state.sink_errors[name] = message
                _log.warning("output %s failed %s", name, message)

        return close

    closers = [closer(s) for s in sinks]
    if callable(getattr(source, "close", None)):
        closers.insert(0, source.close)  # type: ignore[attr-defined]
    error: BaseException | None = None
    with _signals_stop(state, install_signal_handlers):
        state.start = clock()
        try:
            if max_frames == 0:
                state.stopped_by = "max_frames"
            elif pipelined:
                state.pipelined(latest, queue_size, poll)
            else:
                state.serial(poll)
        except BaseException as exc:
            error = exc
        elapsed = clock() - state.start
        close_error = _close_all(closers)
    if error is None and state.errors:
        error = state.errors[0]
    if error is not None:
        raise error
    if close_error is not None:
        raise close_error
    stages = {name: LatencyStats.of(values) for name, values in state.samples.items()}
    return LoopStats(
        frames=state.frames,
        dropped=state.dropped,
        elapsed_s=elapsed,
        fps=state.frames / elapsed if elapsed > 0 else 0.0,
        stages=stages,
        pipelined=pipelined,
        stopped_by=state.stopped_by,
        skipped_frames=state.skipped,
        sink_errors=dict(state.sink_errors),
        lost_frames=state.lost_frames(),
    )
