"""Every zoo model exports to full int8, runs in the runtime from its embedded spec alone, and
agrees with the float Keras model on a real photo; Edge-TPU readiness matches the registry.

Untrained weights (Keras' Glorot init with identity BatchNorm statistics) make activations
shrink ~3x per layer: after 20 layers the outputs are ~1e-20 and every comparison would compare
zeros. Kernels are redrawn He-normal (the variance-preserving init for ReLU nets, what a trained
net's activations look like in scale) so that int8 has real ranges to quantize. (Setting the
BatchNorm statistics from photos instead makes deep 1x1 maps divide by tiny variances, which
amplifies any noise chaotically: a property of that random net, not of the quantizer.)
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from edgekit.core.flatbuffer import read_tflite_file  # noqa: E402
from edgekit.data.images import read_rgb  # noqa: E402
from edgekit.export.edgetpu import summarize  # noqa: E402
from edgekit.export.tflite import ExportConfig, export_model  # noqa: E402
from edgekit.io.sources import sample_images as sample_photos  # noqa: E402
from edgekit.runtime.model import Model  # noqa: E402
from edgekit.zoo.registry import get_entry, list_models  # noqa: E402

pytestmark = pytest.mark.tf

SIZE = 96
NUM_CLASSES = 5
FAST = {"ssdlite_mobilenet_v2", "mobilenet_v3_small", "movenet_mobilenet_v2"}
NAMES = [e.name for e in list_models()]


def he_reinit(model, seed=0):
    """Redraw every conv/dense kernel from He-normal (std sqrt(2 / fan_in)), the variance-
    preserving init for ReLU networks, so activations neither vanish nor explode; ``*_logits``
    heads 20x smaller so sigmoid outputs are not all saturated at 1."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers():
        kernel = getattr(layer, "kernel", None)
        if kernel is None or len(kernel.shape) not in (2, 4):
            continue
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            fan_in = kernel.shape[0] * kernel.shape[1]
        else:
            fan_in = int(np.prod(kernel.shape[:-1]))
        std = np.sqrt(2.0 / fan_in) * (0.05 if layer.name.endswith("_logits") else 1.0)
        kernel.assign(rng.normal(0.0, std, kernel.shape).astype(np.float32))


def _as_list(out):
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def _corr(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def check_agreement(task, decoder, ref, got):
    """Float vs int8 raw outputs on one photo. Tolerances: int8 activations carry ~range/255
    rounding per layer, which over tens of layers leaves a few % of the output range as noise:
    - classifiers: same top-1 when the float margin is clear (> 0.1), probabilities within 0.25
      (observed: <= 0.07 for 10 of the 11 classifiers, 0.20 for EfficientNet-Lite1, whose
      random 0.64 top probability int8 puts at 0.48: a deep untrained net amplifies rounding
      noise more than a trained one, which is contractive around its data);
    - detectors: Pearson correlation of each raw output >= 0.95 (box encodings, logits, YOLO
      predictions), i.e. the int8 map is the float map plus small noise;
    - pose (decode in graph, kept float): median keypoint displacement within one heatmap cell
      (an argmax can move to a neighbouring cell), keypoint scores within 0.05.
    """
    if task == "classify":
        p, q = ref[0].ravel(), got[0].ravel()
        top2 = np.sort(p)[-2:]
        if top2[1] - top2[0] > 0.1:
            assert int(np.argmax(p)) == int(np.argmax(q))
        assert np.abs(p - q).max() <= 0.25
        return {"max_abs_prob_diff": float(np.abs(p - q).max())}
    if decoder == "movenet":
        r, g = ref[0].reshape(17, 3), got[0].reshape(17, 3)
        dist = np.hypot(r[:, 0] - g[:, 0], r[:, 1] - g[:, 1])
        cell = 4.0 / SIZE  # one heatmap cell (output stride 4): argmax may move by one cell
        assert np.median(dist) <= cell, dist
        assert np.abs(r[:, 2] - g[:, 2]).max() <= 0.05
        return {
            "median_kp_dist": float(np.median(dist)),
            "max_score_diff": float(np.abs(r[:, 2] - g[:, 2]).max()),
        }
    cs = [_corr(r, g) for r, g in zip(ref, got, strict=True)]
    assert min(cs) >= 0.95, cs
    return {"corr": cs}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in NAMES]
)
def test_zoo_model_exports_to_int8_and_runs(name, tmp_path):
    entry = get_entry(name)
    n = None if entry.task == "pose" else NUM_CLASSES
    model = entry.create(num_classes=n, input_size=SIZE)
    labels = () if entry.task == "pose" else tuple(f"class{i}" for i in range(NUM_CLASSES))
    spec = entry.spec(model, labels)
    he_reinit(model)
    result = export_model(
        model, spec, ExportConfig(format="int8", out=tmp_path / f"{name}.tflite", calib_samples=24)
    )

    loaded = Model.load(result.path)  # no flags: everything comes from the embedded spec
    assert (loaded.spec.task, loaded.spec.decoder) == (entry.task, entry.decoder)
    assert loaded.spec.input_dtype == "uint8" and loaded.spec.input_size == (SIZE, SIZE)
    if entry.task != "pose":
        assert loaded.labels == labels
    photo = read_rgb(sample_photos()[0])
    pred = loaded.predict(photo, score_threshold=0.0)
    if entry.task == "classify":
        assert len(pred.classes) >= 1 and pred.classes[0].label.startswith("class")
    elif entry.task == "pose":
        assert len(pred.poses) == 1 and len(pred.poses[0].keypoints) == 17
        # the float decode tail is not rounded anywhere: the only QUANTIZE is the input's (a
        # sigmoid read twice used to be rounded to 1/256 steps before the keypoint argmax)
        graph = read_tflite_file(result.path).main
        quantize = [op for op in graph.operators if op.op == "QUANTIZE"]
        assert [op.inputs[0] for op in quantize] == list(graph.inputs)
    else:
        assert isinstance(pred.detections, tuple)

    # both see the same input: the int8 model's own (its real value for the float model), so
    # the comparison measures the network's quantization, not the input's rounding
    tensor, _ = loaded.preprocess(photo)
    scale, zero = loaded.input_details[0]["quantization"]
    x = (tensor.astype(np.float32) - zero) * scale
    ref = _as_list(model(x, training=False))
    got = loaded.dequantize(loaded.invoke(tensor))
    metrics = check_agreement(entry.task, entry.decoder, ref, got)

    report = result.edgetpu_report
    if entry.edgetpu_ready:
        assert report["edgetpu_ready"], summarize(report)
        before_tail = [op for op in report["ops"] if op["status"] not in ("cpu_tail", "cpu_head")]
        assert all(op["status"] == "mappable" for op in before_tail)
    else:
        first = report["first_unmappable"]
        assert first is not None and first["reason"], summarize(report)
        assert first["op"] in first["reason"] or "quantized" in first["reason"]
    print(name, summarize(report), metrics)
