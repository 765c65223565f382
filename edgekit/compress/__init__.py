"""edgekit.compress: distillation, pruning, quantization, and one pipeline that reports each stage.

The only package where tf-keras / TensorFlow Model Optimization appear (TFMOT 0.8.1 needs tf-keras
models: :mod:`edgekit.compress.prune` bridges Keras 3 models to tf-keras twins and back).

- :mod:`~edgekit.compress.teacher`: Keras or ``.tflite`` teachers, the on-disk output cache,
  linear probes between label spaces, detection/pose pseudo-labels, frames from video.
- :mod:`~edgekit.compress.distill`: :class:`~edgekit.compress.distill.Distiller` (soft targets /
  head matching) and classification training on image folders.
- :mod:`~edgekit.compress.prune`: magnitude pruning with schedules (TFMOT), sparsity report.
- :mod:`~edgekit.compress.structured`: channel pruning that rebuilds a thinner MobileNetV2-style model.
- :mod:`~edgekit.compress.quantize`: int8/dynamic/float16 PTQ through :mod:`edgekit.export`, QAT,
  float-vs-int8 error.
- :mod:`~edgekit.compress.recipes` (config, measure, classify, detect) /
  :mod:`~edgekit.compress.report`: ``edgekit compress``.

Submodules import TensorFlow; import them explicitly (this package itself imports nothing heavy).
"""
