"""Quantize an existing float ``.tflite`` with ai-edge-quantizer (Google's LiteRT quantizer).

For models edgekit did not build (or whose Keras source is gone): the recipe is applied to the
flatbuffer itself. Static recipes calibrate on real images run through the model's own
preprocessing (from its embedded spec). The result keeps the spec and labels, with
``export_format`` ``aeq-<recipe>``, so ``edgekit detect/eval/bench`` run it like any export.
Needs ``pip install 'edgekit[quantizer]'``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgekit.errors import DependencyMissing, UsageError

__all__ = ["AEQ_RECIPES", "quantize_tflite"]

# ai_edge_quantizer.recipe functions offered here: weights x activations, bits.
AEQ_RECIPES: tuple[str, ...] = (
    "static_wi8_ai8",  # full int8 (int8 input and output), calibrated
    "static_wi8_ai16",  # int8 weights, int16 activations, calibrated
    "dynamic_wi8_afp32",  # int8 weights, activations quantized on the fly
    "weight_only_wi8_afp32",  # int8 weights dequantized at load, float compute
    "dynamic_wi4_afp32",  # int4 weights, dynamic activations
)


def quantize_tflite(
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    recipe: str = "static_wi8_ai8",
    calib_images: Sequence[np.ndarray] = (),
    *,
    threads: int = 2,
) -> Path:
    """Apply ``recipe`` to the float model ``model`` and write ``out`` (spec + labels kept).

    ``calib_images``: RGB uint8 images for the static recipes (each goes through the model's
    preprocessing, so the calibration sees what inference will)."""
    try:
        from ai_edge_quantizer import quantizer
        from ai_edge_quantizer import recipe as recipes
    except ImportError as exc:
        raise DependencyMissing(
            "ai-edge-quantizer is not installed", hint="pip install 'edgekit[quantizer]'"
        ) from exc
    from edgekit.core.artifact import flatbuffer_end, read_embedded
    from edgekit.core.flatbuffer import read_tflite
    from edgekit.export.metadata import finalize_spec, write_artifact
    from edgekit.runtime.interpreter import read_model_bytes
    from edgekit.runtime.model import Model

    if recipe not in AEQ_RECIPES:
        raise UsageError(f"unknown ai-edge-quantizer recipe {recipe!r}; one of {AEQ_RECIPES}")
    data, name, _ = read_model_bytes(model)
    flat = data[: flatbuffer_end(data)]
    graph = read_tflite(flat)
    if graph.inputs[0].dtype != "float32":
        raise UsageError(f"{name}: input is {graph.inputs[0].dtype}; quantize a float model")
    q = quantizer.Quantizer(bytearray(flat), getattr(recipes, recipe)())
    calibration = None
    if q.need_calibration:
        if not calib_images:
            raise UsageError(f"recipe {recipe} calibrates: give calibration images")
        runner = Model.load(model, threads=threads)
        signature, input_name = _signature_input(flat)
        feeds = [{input_name: runner.preprocess(img)[0]} for img in calib_images]
        calibration = q.calibrate({signature: feeds}, num_threads=threads)
    result = q.quantize(calibration, enable_progress_report=False)
    quantized = bytes(result.quantized_model)
    embedded = read_embedded(data)
    target = Path(out)
    if embedded.spec is None:
        from edgekit.core.artifact import embed

        target.write_bytes(embed(quantized, None, embedded.labels or None))
        return target
    spec = finalize_spec(
        embedded.spec, read_tflite(quantized), labels=embedded.labels or None,
        export_format=f"aeq-{recipe}",
    )  # fmt: skip
    return write_artifact(target, quantized, spec, embedded.labels or None)


def _signature_input(flatbuffer: bytes) -> tuple[str, str]:
    """(signature key, input name) of a one-input model, as the quantizer's calibrator wants."""
    from edgekit.runtime.interpreter import resolve_backend

    interpreter = resolve_backend().interpreter_cls(model_content=flatbuffer)
    signatures = interpreter.get_signature_list()
    if not signatures:
        raise UsageError("the model has no signature; ai-edge-quantizer calibrates by signature")
    key = next(iter(signatures))
    inputs = signatures[key]["inputs"]
    if len(inputs) != 1:
        raise UsageError(f"signature {key!r} has {len(inputs)} inputs; edgekit models take one")
    return key, inputs[0]
