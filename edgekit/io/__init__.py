"""Frame sources, result sinks and the overlay: the edges where pixels enter and leave."""

from edgekit.core.types import Sink
from edgekit.io.base import Source
from edgekit.io.overlay import draw
from edgekit.io.sinks import (
    ConsoleSink,
    JsonlSink,
    VideoSink,
    WindowSink,
    gui_available,
    result_to_json,
)
from edgekit.io.sources import (
    ImageSource,
    LoresSource,
    VideoSource,
    open_source,
    picamera2_available,
    sample_images,
    sample_source,
)

__all__ = [
    "ConsoleSink",
    "ImageSource",
    "JsonlSink",
    "LoresSource",
    "Sink",
    "Source",
    "VideoSink",
    "VideoSource",
    "WindowSink",
    "draw",
    "gui_available",
    "open_source",
    "picamera2_available",
    "result_to_json",
    "sample_images",
    "sample_source",
]
