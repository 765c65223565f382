"""The camera app behind ``edgekit detect | pose | classify``: model + source + sinks + loop.

:func:`run_app` builds everything a :class:`RunConfig` names and hands it to
:func:`edgekit.loop.run`; it knows nothing of threads or queues, and the loop knows nothing of
models or cameras. No TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.core.types import TASKS, pick_stages
from edgekit.errors import SinkError, UsageError

__all__ = ["ASSETS", "ON_OUTPUT_ERROR", "RunConfig", "check_outputs", "default_model", "run_app"]

#: What an output failing during a run does: the first is the default (see README, exit status).
ON_OUTPUT_ERROR = ("continue", "stop")

ASSETS = Path(__file__).resolve().parent / "assets"

#: The file outputs a run writes: RunConfig field -> the :mod:`edgekit.io.sinks` class that
#: writes it, opened in this order (then the window, the live preview and systemd's watchdog).
#: A new output: its sink in io/, a RunConfig field and CLI option, and a row here.
FILE_OUTPUTS: tuple[tuple[str, str], ...] = (("jsonl", "JsonlSink"), ("save", "VideoSink"))

# What a task's default model is called inside edgekit/assets (shipped by a later release).
DEFAULT_MODEL_NAMES: dict[str, tuple[str, ...]] = {
    task: (f"{task}_default.tflite", f"{task}_default_int8.tflite") for task in TASKS
}

# A registry model per task to suggest while no default is packaged (`edgekit models list`).
_EXPORT_HINT = {
    "detect": "ssdlite_mobilenet_v2",
    "pose": "movenet_mobilenet_v2",
    "classify": "mobilenet_v2",
}


@dataclass(frozen=True)
class RunConfig:
    """Everything one ``edgekit detect|pose|classify`` run needs.

    ``source``: a file, folder, glob, URL or device index (``None`` = the built-in ``sample``
    photos); ``camera``: a camera index (picamera2 on a Pi, OpenCV elsewhere) instead of
    ``source``. ``model=None`` uses the packaged default model of ``task``. ``score`` is the
    score threshold (``None`` = the model's default). ``max_frames``/``duration`` stop the run.
    ``track`` (detect only) adds stable track ids (:mod:`edgekit.core.tracking`); ``serve``
    (``[HOST:]PORT``) adds the live web preview (:mod:`edgekit.serve`), which requires
    ``token`` (generated when ``None``) unless bound to loopback, and encodes at most
    ``serve_fps`` frames a second (``None``: every frame). ``edgetpu_fallback``: an Edge
    TPU model whose delegate fails to load runs its CPU sibling (``x.tflite``) with a warning;
    ``reconnect``: a live OpenCV camera or stream that is lost is opened again with backoff.
    ``on_output_error``: what an output that fails during the run (a full disk, an unwritable
    file) does: "continue" (the run goes on without it) or "stop" (the run ends); either way
    :func:`check_outputs` turns it into exit status 5 once the run is over.
    """

    task: str
    model: Path | None = None
    source: str | None = None
    camera: int | None = None
    jsonl: Path | None = None
    save: Path | None = None
    display: bool = True
    score: float | None = None
    threads: int | None = None
    backend: str | None = None
    labels: Path | None = None
    max_frames: int | None = None
    duration: float | None = None
    console: bool = True
    extra_thresholds: dict[str, Any] = field(default_factory=dict)
    track: bool = False
    serve: str | None = None
    token: str | None = None
    serve_fps: float | None = 15.0
    edgetpu_fallback: bool = True
    reconnect: bool = True
    on_output_error: str = "continue"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise UsageError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.source is not None and self.camera is not None:
            raise UsageError("give either --source or --camera, not both")
        if self.score is not None and not 0.0 <= self.score <= 1.0:
            raise UsageError(f"--score must be between 0 and 1, got {self.score}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {self.threads}")
        if self.max_frames is not None and self.max_frames < 1:
            raise UsageError(f"--max-frames must be >= 1, got {self.max_frames}")
        if self.duration is not None and self.duration <= 0:
            raise UsageError(f"--duration must be > 0 seconds, got {self.duration}")
        if self.camera is not None and self.camera < 0:
            raise UsageError(f"--camera index must be >= 0, got {self.camera}")
        if self.track and self.task != "detect":
            raise UsageError(f"--track works with detect only, not {self.task}")
        if self.serve is not None:
            from edgekit.serve.server import parse_bind

            parse_bind(self.serve)  # raises UsageError naming what is wrong
        if self.token is not None and not self.token.strip():
            raise UsageError("--token must not be empty")
        if self.serve_fps is not None and self.serve_fps <= 0:
            raise UsageError(f"--serve-fps must be > 0, got {self.serve_fps}")
        if self.on_output_error not in ON_OUTPUT_ERROR:
            raise UsageError(
                f"--on-output-error must be one of {', '.join(ON_OUTPUT_ERROR)}, "
                f"got {self.on_output_error!r}"
            )


def default_model(task: str, assets: Path | None = None) -> Path:
    """The packaged default model for ``task`` (``edgekit/assets/<task>_default.tflite``).

    Raises :class:`UsageError` saying how to get a model while none is packaged.
    """
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    folder = ASSETS if assets is None else assets
    for name in DEFAULT_MODEL_NAMES[task]:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise UsageError(
        f"no default {task} model is packaged with this edgekit yet; pass --model MODEL.tflite",
        hint=f"train and export one, e.g. `edgekit export {_EXPORT_HINT[task]} --out {task}.tflite`, "
        f"or use any TFLite {task} model, e.g. from the Coral model zoo",
    )


def window_possible() -> bool:
    """True when OpenCV has a GUI (not the headless wheel) and, on Linux, a display exists."""
    import os
    import sys

    from edgekit.io.sinks import gui_available

    if not gui_available():
        return False
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False
    return True


def _check_task(config: RunConfig, model: Any) -> None:
    spec = model.spec
    if spec.task != config.task:
        raise UsageError(
            f"{model.path}: is a {spec.task} model (decoder {spec.decoder}), "
            f"not a {config.task} model; run `edgekit {spec.task}` with it"
        )


def _fps(source: Any) -> float:
    fps = getattr(source, "fps", None)
    return float(fps) if fps else 10.0


def run_app(
    config: RunConfig,
    *,
    announce: Callable[[str], None] | None = None,
) -> Any:
    """Open the outputs, load and check the model, open the source, run the loop; returns
    ``LoopStats``.

    Each step fails before the next one starts: an output that cannot be written (exit 5)
    before the model loads; a missing, broken or undecodable model (exit 3; the model runs one
    blank frame through its decoder, :meth:`~edgekit.runtime.model.Model.check`) before any
    camera or stream is opened (exit 4). ``announce(line)`` receives one line saying what runs
    (model, kind, backend, threads, source, outputs) before the first frame. The loop closes
    the source and sinks. An output that fails during the run is disabled (the run goes on,
    or stops with ``on_output_error="stop"``) and recorded in the stats: see
    :func:`check_outputs`.
    """
    from edgekit.io.sinks import VideoSink
    from edgekit.io.sources import LoresSource, open_source
    from edgekit.loop import run
    from edgekit.runtime.model import Model
    from edgekit.runtime.step import make_step

    model_path = config.model if config.model is not None else default_model(config.task)
    opened: list[Any] = []
    source = None
    try:
        window, preview = _open_outputs(config, opened)
        labels = str(config.labels) if config.labels is not None else None
        model = Model.load(
            model_path,
            backend=config.backend,
            threads=config.threads,
            labels=labels,
            edgetpu_fallback=config.edgetpu_fallback,
        )
        _check_task(config, model)
        model.check()
        # The model decides its input size once (its preprocessor's resize rule): a Pi camera's
        # low-res stream is sized by it, and any other source's frames are resized by it in
        # the capture thread (LoresSource), so inference never waits on a resize.
        resized_hw = model.preprocessor.resized_hw
        source = open_source(
            config.source, camera=config.camera, reconnect=config.reconnect, resized_hw=resized_hw
        )
        for sink in opened:  # a video file plays at the source's rate (known only now)
            if isinstance(sink, VideoSink):
                sink.fps = _fps(source)
        source = LoresSource(source, resized_hw)
        thresholds = dict(config.extra_thresholds)
        if config.score is not None:
            thresholds["score_threshold"] = config.score
        step = make_step(model, **thresholds)
        if config.track:
            from edgekit.runtime.track_step import make_tracking_step

            step = make_tracking_step(step)
        if config.console:  # stderr: cannot fail to open; made last so a failure prints nothing
            from edgekit.io.sinks import ConsoleSink

            every = 30 if getattr(source, "live", False) else 1
            opened.insert(0, ConsoleSink(every=every))
    except BaseException:
        for sink in opened:
            _close_quietly(sink)
        if source is not None:
            source.close()
        raise
    if announce is not None:
        announce(_describe(config, model, source, window))
        if preview is not None:
            announce(f"live preview at {preview.url}")
    return run(
        source,
        step,
        opened,
        max_frames=config.max_frames,
        duration=config.duration,
        stop_on_sink_error=config.on_output_error == "stop",
    )


def _open_outputs(config: RunConfig, opened: list[Any]) -> tuple[bool, Any]:
    """Open every output ``config`` names but the console into ``opened`` (in place, so a
    failure part-way leaves the ones to close there); returns (a window was opened, the
    preview sink or None)."""
    from edgekit.io import sinks as sinks_mod

    for field_name, sink_class in FILE_OUTPUTS:
        target = getattr(config, field_name)
        if target is not None:
            opened.append(getattr(sinks_mod, sink_class)(target))
    window = config.display and window_possible()
    if window:
        opened.append(sinks_mod.WindowSink(title=f"edgekit {config.task}"))
    preview = None
    if config.serve is not None:
        from edgekit.serve import PreviewSink, parse_bind

        host, port = parse_bind(config.serve)
        preview = PreviewSink(host, port, token=config.token, max_fps=config.serve_fps)
        opened.append(preview)
    if os.environ.get("NOTIFY_SOCKET"):  # under systemd (Type=notify): READY + watchdog
        from edgekit.io.sdnotify import WatchdogSink

        opened.append(WatchdogSink())
    return window, preview


def check_outputs(stats: Any) -> None:
    """Raise :class:`SinkError` (exit status 5) when an output of the run was disabled or failed
    to close: names each one, the frames it lost and why. Nothing when every output held."""
    errors = getattr(stats, "sink_errors", {})
    if not errors:
        return
    parts = []
    for name, error in errors.items():
        lost = getattr(stats, "lost_frames", {}).get(name)
        what = f"lost {lost} of {stats.frames} frames" if lost is not None else "failed"
        parts.append(f"{name} {what} ({error})")
    noun = "output" if len(parts) == 1 else f"{len(parts)} outputs"
    raise SinkError(f"{noun} {'; '.join(parts)}")


def _describe(config: RunConfig, model: Any, source: Any, window: bool) -> str:
    spec = model.spec
    targets = (getattr(config, field_name) for field_name, _ in FILE_OUTPUTS)
    outputs = [str(p) for p in targets if p is not None]
    if window:
        outputs.append("window")
    delegate = f" + {model.backend.delegate}" if model.backend.delegate else ""
    return (
        f"model {model.path} ({spec.task}, {spec.decoder}, input "
        f"{spec.input_size[0]}x{spec.input_size[1]} {spec.input_dtype}); "
        f"backend {model.backend.name}{delegate}, {model.backend.threads} thread(s); "
        f"source {getattr(source, 'name', config.source)}"
        + (f"; writing {', '.join(outputs)}" if outputs else "")
    )


#: The stages the end-of-run summary shows (core.types.STAGES has what each means).
SUMMARY_STAGES = pick_stages(
    "capture", "preprocess", "invoke", "postprocess", "track", "total", "render", "write"
)


def format_stats(stats: Any) -> str:
    """The end-of-run summary: frames, fps, and p50/p90 per stage (a ``LoopStats``)."""
    mode = "pipelined" if getattr(stats, "pipelined", True) else "serial"
    lines = [
        f"{stats.frames} frames in {stats.elapsed_s:.2f} s = {stats.fps:.1f} fps ({mode}), "
        f"{stats.dropped} dropped, stopped by {stats.stopped_by}"
    ]
    if getattr(stats, "skipped_frames", 0):
        lines.append(f"skipped {stats.skipped_frames} unusable frames (empty or not RGB uint8)")
    for name, error in getattr(stats, "sink_errors", {}).items():
        lost = getattr(stats, "lost_frames", {}).get(name)
        if lost is None:
            lines.append(f"output {name} failed: {error}")
        else:
            lines.append(
                f"output {name} was disabled after a write error: {error}; "
                f"{lost} of {stats.frames} frames not written to it"
            )
    rows = [(name, stats.stages[name]) for name in SUMMARY_STAGES if name in stats.stages]
    rows = [(name, s) for name, s in rows if s.count]
    if rows:
        lines.append(f"{'stage':<12}{'p50 ms':>9}{'p90 ms':>9}")
        lines += [f"{name:<12}{s.p50_ms:>9.2f}{s.p90_ms:>9.2f}" for name, s in rows]
    return "\n".join(lines)


def _close_quietly(sink: Any) -> None:
    with contextlib.suppress(SinkError, OSError):
        sink.close()
