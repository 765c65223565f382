"""The one table of decoders: a new decoder is one module plus one row of DECODERS, and spec
inference, input domains and the model then know it (the example of docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from test_runtime_model import INFO, FakeInterpreter, detail

from edgekit.core.types import ModelSpec
from edgekit.runtime import decoders
from edgekit.runtime.decoders.common import (
    PIXELS_0_1,
    Decode,
    Decoder,
    Outputs,
    Thresholds,
    label_args,
    make_detections,
    to_class_ids,
)
from edgekit.runtime.model import Model
from edgekit.runtime.spec import infer_spec

# --- docs/architecture.md's example module, edgekit/runtime/decoders/boxes6.py ----------------


def _recognise(outputs: Outputs) -> dict | None:
    shapes = outputs.shapes
    ok = len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][2] == 6
    return {"label_offset": 0} if ok else None


def _bind(spec: ModelSpec, details: Sequence[dict], name: str) -> Decode:
    h, w = spec.input_size

    def decode(outs: Sequence[np.ndarray], t: Thresholds) -> list:
        rows = outs[0].reshape(-1, 6)
        rows = rows[rows[:, 4] >= t.score]
        boxes, scores, classes = rows[:, :4] / [w, h, w, h], rows[:, 4], to_class_ids(rows[:, 5])
        return make_detections(boxes, scores, classes, max_detections=t.limit, **label_args(spec))

    return decode


DECODER = Decoder(
    "boxes6", "detect", _bind, recognise=_recognise, input_domain=PIXELS_0_1,
    resize_mode="letterbox", known_as="boxes [1,N,6]",
)  # fmt: skip


@pytest.fixture
def boxes6(monkeypatch):
    """The table row: DECODERS["boxes6"] = boxes6.DECODER."""
    monkeypatch.setitem(decoders.DECODERS, "boxes6", DECODER)
    return DECODER


def test_a_new_decoder_is_one_module_and_one_row(boxes6):
    inputs = [detail("in", (1, 64, 64, 3), np.uint8, quant=(1 / 255, 0))]
    outputs = [detail("dets", (1, 3, 6), index=5)]
    spec = infer_spec(inputs, outputs, labels=("cat", "dog"))
    assert (spec.task, spec.decoder, spec.resize_mode) == ("detect", "boxes6", "letterbox")
    assert spec.normalization == PIXELS_0_1  # the family's input domain, from the row
    rows = np.array([[[16, 16, 48, 48, 0.9, 1], [0, 0, 8, 8, 0.1, 0], [0, 0, 0, 0, 0, 0]]], "f4")
    model = Model(FakeInterpreter(inputs, outputs, {5: rows}), spec, backend=INFO)
    (det,) = model.predict(np.zeros((64, 64, 3), np.uint8), score_threshold=0.5).detections
    assert (det.label, det.class_id) == ("dog", 1)
    assert det.box == pytest.approx((0.25, 0.25, 0.75, 0.75))


def test_without_the_row_the_model_is_not_recognised():
    inputs = [detail("in", (1, 64, 64, 3), np.uint8, quant=(1 / 255, 0))]
    with pytest.raises(Exception, match=r"known: SSD post-process, YOLOv8"):
        infer_spec(inputs, [detail("dets", (1, 3, 6), index=5)])


def test_every_row_is_named_by_its_decoder():
    assert all(d.name == name for name, d in decoders.DECODERS.items())
    assert tuple(decoders.DECODERS) == decoders.DECODER_NAMES
