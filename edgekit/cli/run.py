"""``edgekit detect | pose | classify``: run a model on a camera, video, images or the sample."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

# OpenCV and FFmpeg print warnings of their own (a missing camera, an unreadable file) on top
# of edgekit's one-line error; keep them quiet unless the user asked for them.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

_EPILOG = """\b
Sources: --source takes a video file, an image, a folder of images, a glob ("shots/*.jpg"),
an rtsp:// or http:// stream, or a device index; --camera [N] opens camera N (picamera2 on a
Raspberry Pi, OpenCV elsewhere). With neither, the built-in sample photos are used.
Ctrl-C stops a live run cleanly (outputs are flushed and closed).

\b
Exit status: 0 when every frame reached every output; 2 bad usage, 3 model, 4 source, 5 an
output that cannot be opened (checked before the model loads) or that failed during the run
(--on-output-error decides whether the run goes on; the summary names the output and the
frames it lost)."""


def _options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--model",
            "-m",
            type=click.Path(path_type=Path),
            help="A .tflite model (default: the packaged one for this task).",
        ),
        click.option(
            "--source",
            "-s",
            default=None,
            help="Video, image, folder, glob, URL or device index (default: sample photos).",
        ),
        click.option(
            "--camera",
            type=int,
            is_flag=False,
            flag_value=0,
            default=None,
            metavar="[N]",
            help="Use camera N (default 0) instead of --source.",
        ),
        click.option(
            "--jsonl",
            type=click.Path(path_type=Path),
            help="Write one JSON line per frame (see README, JSONL output).",
        ),
        click.option(
            "--save",
            type=click.Path(path_type=Path),
            help="Write an annotated video (e.g. out.mp4).",
        ),
        click.option(
            "--no-display",
            is_flag=True,
            help="Never open a window (one opens only when OpenCV has a GUI).",
        ),
        click.option(
            "--score",
            type=click.FloatRange(0.0, 1.0),
            default=None,
            help="Minimum score to report (default: the model's).",
        ),
        click.option(
            "--threads",
            type=click.IntRange(min=1),
            default=None,
            help="Interpreter CPU threads (default: cores, at most 4).",
        ),
        click.option(
            "--backend",
            default=None,
            help="ai_edge_litert | tflite_runtime | tensorflow (default: first found).",
        ),
        click.option(
            "--labels",
            type=click.Path(path_type=Path),
            help="Label file overriding the model's (one per line, or 'id name').",
        ),
        click.option(
            "--max-frames", type=click.IntRange(min=1), default=None, help="Stop after N frames."
        ),
        click.option(
            "--duration",
            type=click.FloatRange(min=0.0, min_open=True),
            default=None,
            help="Stop after S seconds.",
        ),
        click.option("--quiet", "-q", is_flag=True, help="No per-frame lines; only the summary."),
        click.option(
            "--serve",
            metavar="[HOST:]PORT",
            default=None,
            help="Live web preview (MJPEG, FPS, latency, results) on PORT, e.g. 8080; "
            "127.0.0.1 unless HOST is given (0.0.0.0: all interfaces, then a token is required).",
        ),
        click.option(
            "--serve-fps",
            type=click.FloatRange(min=0.0),
            default=15.0,
            show_default=True,
            help="Frames per second the preview encodes at most (0: every frame the loop makes); "
            "what the preview costs the loop grows with it.",
        ),
        click.option(
            "--on-output-error",
            type=click.Choice(["continue", "stop"]),
            default="continue",
            show_default=True,
            help="An output that fails during the run (a full disk, an unwritable file): "
            "continue without it, or stop the run. Either way the summary names it and the "
            "frames it lost, and the exit status is 5. Default continue: a camera keeps its "
            "other outputs, preview and systemd watchdog alive, and a restart would not fix "
            "the output anyway.",
        ),
        click.option(
            "--token",
            envvar="EDGEKIT_TOKEN",
            default=None,
            help="Token the preview requires (env EDGEKIT_TOKEN; generated and printed in the "
            "URL when --serve binds beyond 127.0.0.1 without one).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _run(task: str, **kwargs: Any) -> None:
    from edgekit.app import RunConfig, check_outputs, format_stats, run_app

    config = RunConfig(
        task=task,
        model=kwargs["model"],
        source=kwargs["source"],
        camera=kwargs["camera"],
        jsonl=kwargs["jsonl"],
        save=kwargs["save"],
        display=not kwargs["no_display"],
        score=kwargs["score"],
        threads=kwargs["threads"],
        backend=kwargs["backend"],
        labels=kwargs["labels"],
        max_frames=kwargs["max_frames"],
        duration=kwargs["duration"],
        console=not kwargs["quiet"],
        track=kwargs.get("track", False),
        serve=kwargs["serve"],
        token=kwargs["token"] if kwargs["serve"] is not None else None,
        on_output_error=kwargs["on_output_error"],
        serve_fps=kwargs["serve_fps"] or None,
    )
    stats = run_app(config, announce=lambda line: click.echo(line, err=True))
    click.echo(format_stats(stats), err=True)
    check_outputs(stats)  # an output that lost frames: exit status 5, after the summary


_TRACK = click.option(
    "--track",
    is_flag=True,
    help="Give detections stable track ids across frames (IoU + Kalman tracker); they appear "
    "in --jsonl, the overlay and the preview.",
)


def _command(task: str, doc: str, extra: tuple[Any, ...] = ()) -> click.Command:
    def command(**kwargs: Any) -> None:
        _run(task, **kwargs)

    command.__doc__ = doc
    command.__name__ = task
    for option in reversed(extra):
        command = option(command)
    return click.command(
        name=task, epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]}
    )(_options(command))


detect = _command(
    "detect",
    """Detect objects: boxes, classes and scores per frame.

    \b
    Examples:
      edgekit detect --model ssd.tflite                      (sample photos)
      edgekit detect --model ssd.tflite --camera --score 0.5
      edgekit detect --model ssd.tflite --source clip.mp4 --save out.mp4 --jsonl out.jsonl
      edgekit detect --model ssd.tflite --camera --track --serve 8080   (open the printed URL)
    """,
    extra=(_TRACK,),
)
pose = _command(
    "pose",
    """Estimate human poses: 17 COCO keypoints per person per frame.

    \b
    Examples:
      edgekit pose --model movenet.tflite --camera
      edgekit pose --model posenet.tflite --source video.mp4 --save out.mp4 --no-display
    """,
)
classify = _command(
    "classify",
    """Classify whole frames: top classes and scores per frame.

    \b
    Examples:
      edgekit classify --model mobilenet_v2.tflite --source photos/
      edgekit classify --model mobilenet_v2.tflite --camera --max-frames 100 --jsonl out.jsonl
    """,
)
