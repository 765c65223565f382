"""Classifier decoder: top-k of a score vector."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgekit.core.types import Classification, ModelSpec
from edgekit.runtime.decoders.common import (
    Decode,
    Decoder,
    Outputs,
    Thresholds,
    detail_shape,
    label_args,
    label_for,
    label_offset,
)

__all__ = ["DECODER", "decode", "softmax"]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax of a 1-D vector; non-finite entries get probability 0."""
    x = np.asarray(logits, dtype=np.float64).reshape(-1)
    finite = np.isfinite(x)
    out = np.zeros_like(x)
    if not finite.any():
        return out
    z = np.exp(x[finite] - x[finite].max())
    out[finite] = z / z.sum()
    return out


def decode(
    scores: np.ndarray,
    *,
    top_k: int = 5,
    score_threshold: float = 0.0,
    labels: Sequence[str] | None = None,
    label_offset: int = 0,
    apply_softmax: bool = False,
) -> list[Classification]:
    """The ``top_k`` classes scoring >= ``score_threshold``, best first (ties: lower index first).

    ``scores`` is (N,) or (1, N). ``class_id`` is the model's output index; its label is
    ``labels[class_id + label_offset]`` (ImageNet 1001-class models with the 1001-line label file:
    offset 0, index 0 is "background"). Scores are used as given unless ``apply_softmax``.
    Non-finite scores are skipped.
    """
    s = np.asarray(scores, dtype=np.float64)
    while s.ndim > 1 and s.shape[0] == 1:
        s = s[0]
    if s.ndim != 1:
        raise ValueError(f"classifier output must be (N,) or (1, N), got {np.shape(scores)}")
    if apply_softmax:
        s = softmax(s)
    idx = np.flatnonzero(np.isfinite(s) & (s >= score_threshold))
    idx = idx[np.argsort(-s[idx], kind="stable")][: max(int(top_k), 0)]
    return [
        Classification(int(i), float(s[i]), label_for(labels, int(i), label_offset)) for i in idx
    ]


# --- the decoder: one score vector ------------------------------------------------------------


def _recognise(outputs: Outputs) -> dict | None:
    shapes = outputs.shapes
    if len(shapes) == 1 and (
        len(shapes[0]) == 2 or (len(shapes[0]) == 4 and shapes[0][1:3] == (1, 1))
    ):
        return {"label_offset": label_offset(outputs.labels, shapes[0][-1])}
    return None


def _num_classes(spec: ModelSpec, details: Sequence[dict]) -> int | None:
    if len(details) != 1:
        return None
    shape = detail_shape(details[0])
    return shape[-1] if shape else None


def _bind(spec: ModelSpec, details: Sequence[dict], name: str) -> Decode:
    def decode_scores(outs: Sequence[np.ndarray], t: Thresholds) -> list:
        params = spec.decoder_params
        return decode(
            outs[0].reshape(-1),
            top_k=t.limit,
            score_threshold=t.score,
            **label_args(spec),
            apply_softmax=bool(params.get("softmax", False)),
        )

    return decode_scores


DECODER = Decoder(
    "classify",
    "classify",
    _bind,
    recognise=_recognise,
    resize_mode="resize",
    known_as="classifier [1,N]",
    num_classes=_num_classes,
)
