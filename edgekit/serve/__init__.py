"""The live web preview: MJPEG of annotated frames, stats and detections over HTTP.

``PreviewSink(host, port, token=...)`` is a loop sink; ``edgekit detect|pose|classify --serve
[HOST:]PORT`` adds one. Standard library HTTP server; no TensorFlow.
"""

from edgekit.serve.hub import FrameHub
from edgekit.serve.server import (
    PreviewLimits,
    PreviewServer,
    frame_part,
    is_loopback,
    new_token,
    parse_bind,
)
from edgekit.serve.sink import PreviewSink, encode_jpeg
from edgekit.serve.stats_window import StatsWindow

__all__ = [
    "FrameHub",
    "PreviewLimits",
    "PreviewServer",
    "PreviewSink",
    "StatsWindow",
    "encode_jpeg",
    "frame_part",
    "is_loopback",
    "new_token",
    "parse_bind",
]
