"""Output decoders: one module per model family, and the one table of them.

Each value ``ModelSpec.decoder`` may take is a :class:`~edgekit.runtime.decoders.common.Decoder`
defined by its family's module (how the outputs are found: ``resolve_outputs``, ``recognise``;
how they are read: ``bind``) and listed once in :data:`DECODERS`. The model loader, spec
inference (:mod:`edgekit.runtime.spec`, in this table's order), ``edgekit info`` and
docs/architecture.md all read this table; a new decoder is a new module plus one row here.
"""

from __future__ import annotations

from edgekit.errors import UnsupportedModelError
from edgekit.runtime.decoders import classify, movenet, posenet, ssd, yolo
from edgekit.runtime.decoders.common import Decoder

__all__ = ["DECODERS", "DECODER_NAMES", "Decoder", "get_decoder"]

#: ``ModelSpec.decoder`` -> its decoder. Spec inference tries the recognisable ones in this order.
DECODERS: dict[str, Decoder] = {
    "ssd_postprocess": ssd.POSTPROCESS,  # TFLite_Detection_PostProcess: boxes, classes, scores, count
    "ssd_raw": ssd.RAW,  # box encodings [1,A,4] + class scores [1,A,C] + anchors in the spec
    "yolo": yolo.HEAD,  # anchor-free head [1,4+C,N] (or transposed)
    "yolo_nms": yolo.NMS,  # NMS inside the model: boxes, scores, classes, count
    "movenet": movenet.DECODER,  # MoveNet SinglePose [1,1,17,3]
    "posenet": posenet.DECODER,  # PoseNet heatmaps + short/mid offsets
    "classify": classify.DECODER,  # class scores [1,N]
}

#: The values ``ModelSpec.decoder`` may take.
DECODER_NAMES = tuple(DECODERS)


def get_decoder(name: str) -> Decoder:
    """The decoder called ``name`` (``UnsupportedModelError`` listing the known ones)."""
    if name not in DECODERS:
        raise UnsupportedModelError(f"unknown decoder {name!r} (known: {', '.join(DECODERS)})")
    return DECODERS[name]
