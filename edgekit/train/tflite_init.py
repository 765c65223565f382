"""Initialise a zoo MobileNetV2 backbone from the weights inside a MobileNetV2 ``.tflite``.

The zoo's builders never download weights, and a 2-core CPU cannot pre-train a backbone on
ImageNet. An ImageNet classifier that is already on disk as TFLite (e.g. the quantized
``mobilenet_v2_1.0_224_quant.tflite`` of the Coral/TF-Lite model zoos) holds the same
convolutions with BatchNorm folded in: :func:`mobilenet_v2_from_tflite` dequantizes them and
writes them into the zoo model's backbone layers (``Conv1``, ``expanded_conv_*``,
``block_*_{expand,depthwise,project}``, ``Conv_1``), in graph order, checking every shape.

Each BatchNorm then reproduces the folded bias exactly in inference mode (``mean = mu``,
``var = sigma**2``, ``gamma = sigma``, ``beta = mu + bias``), where ``mu``/``sigma`` are the
per-channel statistics of that convolution's output on ``images`` when given (so the batch
statistics of training mode match the moving ones at the start), else 0 and 1.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ModelLoadError, UsageError

__all__ = ["backbone_conv_layers", "mobilenet_v2_from_tflite", "read_folded_convs"]


def read_folded_convs(path: str | os.PathLike[str]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(op, kernel, bias)`` of every CONV_2D / DEPTHWISE_CONV_2D in graph order, dequantized
    to float32, the kernel in Keras layout (conv ``(kh, kw, in, out)``, depthwise
    ``(kh, kw, C, 1)``)."""
    from edgekit.runtime.interpreter import make_interpreter

    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"{p}: no such model file")
    interp, _ = make_interpreter(p, threads=1)
    details = {t["index"]: t for t in interp.get_tensor_details()}

    def deq(index: int) -> np.ndarray:
        t = details[index]
        q = interp.get_tensor(index).astype(np.float64)
        qp = t["quantization_parameters"]
        scales, zps = np.asarray(qp["scales"]), np.asarray(qp["zero_points"])
        if scales.size == 0:
            return q.astype(np.float32)
        axis = int(qp.get("quantized_dimension", 0))
        shape = [1] * q.ndim
        if scales.size > 1:
            shape[axis] = -1
        return ((q - zps.reshape(shape)) * scales.reshape(shape)).astype(np.float32)

    out = []
    for op in interp._get_ops_details():
        name = op["op_name"]
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        w = deq(op["inputs"][1])
        b = deq(op["inputs"][2]) if len(op["inputs"]) > 2 and op["inputs"][2] >= 0 else None
        # conv (out, kh, kw, in) -> (kh, kw, in, out); depthwise (1, kh, kw, C) -> (kh, kw, C, 1)
        kernel = np.transpose(w, (1, 2, 3, 0))
        if b is None:
            b = np.zeros(kernel.shape[-1] if name == "CONV_2D" else kernel.shape[2], np.float32)
        out.append((name, kernel, b))
    return out


def backbone_conv_layers(model: Any) -> list[Any]:
    """The zoo MobileNetV2 backbone's Conv2D/DepthwiseConv2D layers of ``model``, graph order."""
    import re

    pat = re.compile(
        r"^(Conv1|expanded_conv_(depthwise|project)|block_\d+_(expand|depthwise|project)|Conv_1)$"
    )
    return [layer for layer in model.layers if pat.match(layer.name)]


def mobilenet_v2_from_tflite(
    model: Any,
    path: str | os.PathLike[str],
    images: np.ndarray | None = None,
) -> int:
    """Copy the MobileNetV2 weights of ``path`` into ``model``'s backbone (module docstring).

    ``images``: optional (N, H, W, 3) float inputs, already normalized as the model expects,
    for the BatchNorm statistics. Returns the number of layers set; ``UsageError`` when the
    layer list or a shape does not match (another width, another architecture).
    """
    import keras

    convs = read_folded_convs(path)
    layers = backbone_conv_layers(model)
    if not layers:
        raise UsageError(f"{model.name}: no MobileNetV2 backbone layers (Conv1, block_*) found")
    if len(convs) < len(layers):
        raise UsageError(f"{path}: {len(convs)} convolutions, the backbone has {len(layers)}")
    bns = []
    for layer, (op, kernel, _bias) in zip(layers, convs, strict=False):
        want = tuple(int(v) for v in layer.kernel.shape)
        if want != kernel.shape:
            raise UsageError(
                f"{path}: {op} kernel {kernel.shape} does not fit {layer.name} {want} "
                "(another width multiplier?)"
            )
        layer.kernel.assign(kernel)
        bn = model.get_layer(f"{layer.name}_bn")
        bns.append(bn)
    # identity BatchNorms first: the model now computes the folded network exactly
    for bn, (_op, _kernel, bias) in zip(bns, convs, strict=False):
        eps = float(bn.epsilon)
        c = bias.shape[0]
        bn.set_weights(
            [np.ones(c, np.float32), bias, np.zeros(c, np.float32), np.full(c, 1 - eps, np.float32)]
        )
    if images is not None and len(images):
        probe = keras.Model(model.inputs, [layer.output for layer in layers])
        outs = probe.predict(np.asarray(images, np.float32), batch_size=8, verbose=0)
        for bn, (_op, _k, bias), y in zip(bns, convs, outs, strict=False):
            conv = np.asarray(y, np.float64).reshape(-1, y.shape[-1])
            mu, sigma = conv.mean(0), conv.std(0) + 1e-3
            eps = float(bn.epsilon)
            bn.set_weights(
                [
                    sigma.astype(np.float32),
                    (mu + bias).astype(np.float32),
                    mu.astype(np.float32),
                    (sigma**2 - eps).clip(1e-6).astype(np.float32),
                ]
            )
    return len(layers)


def calibration_images(paths: Sequence[Path], size: tuple[int, int], limit: int = 32) -> np.ndarray:
    """Up to ``limit`` images resized to ``size`` and normalized to [-1, 1] (MobileNet)."""
    import cv2

    from edgekit.data.images import decode_rgb

    out = []
    for p in list(paths)[:limit]:
        img = decode_rgb(p)
        if img is None:
            continue
        img = cv2.resize(img, (size[1], size[0]))
        out.append((img.astype(np.float32) - 127.5) / 127.5)
    return np.stack(out) if out else np.zeros((0, *size, 3), np.float32)
