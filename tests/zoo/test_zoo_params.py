"""Canonical classifier configs have the reference implementations' parameter counts and MACs."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("tensorflow")

from edgekit.zoo.classifier import build_classifier
from edgekit.zoo.counts import count_params, model_stats

# keras.applications counts (weights=None, 224x224, 1000 classes), MACs from the papers.
CANONICAL = {
    "mobilenet_v1": (4_253_864, 569e6),
    "mobilenet_v2": (3_538_984, 300e6),
    "mobilenet_v3_large": (5_507_432, 217e6),
    "mobilenet_v3_small": (2_554_968, 56.5e6),
}


@pytest.mark.parametrize("name", sorted(CANONICAL))
def test_mobilenet_parameter_counts_equal_keras_applications(name):
    params, macs = CANONICAL[name]
    stats = model_stats(build_classifier(name, 224, 1000))
    assert stats.params == params
    assert stats.macs == pytest.approx(macs, rel=0.01)


def test_efficientnet_lite0_matches_the_tf_reference():
    """The TF reference reports 4,652,008 trainable parameters (4.65M); the Keras count adds the
    batch-norm moving statistics."""
    model = build_classifier("efficientnet_lite0", 224, 1000)
    assert count_params(model, trainable_only=True) == 4_652_008
    assert count_params(model) == pytest.approx(4.65e6, rel=0.01)


def test_minimalistic_v3_matches_keras_applications():
    import keras

    ours = build_classifier("mobilenet_v3_small_minimalistic", 96, 10)
    ref = keras.applications.MobileNetV3Small(
        input_shape=(96, 96, 3),
        weights=None,
        classes=10,
        minimalistic=True,
        include_preprocessing=False,
    )
    assert ours.count_params() == ref.count_params()
    # the same tensors, up to the head being Dense here and 1x1 Conv2D there
    assert sorted(math.prod(w.shape) for w in ours.weights) == sorted(
        math.prod(w.shape) for w in ref.weights
    )


def test_efficientnet_lite_scaling_keeps_stem_head_and_end_repeats_fixed():
    from edgekit.zoo.efficientnet_lite import LITE_PARAMS

    for name in ("efficientnet_lite0", "efficientnet_lite4"):
        width, depth, _, _ = LITE_PARAMS[name]
        model = build_classifier(name, 64, 10)
        assert model.get_layer("stem_conv").filters == 32
        assert model.get_layer("top_conv").filters == 1280
        dw = [layer.name for layer in model.layers if layer.name.endswith("_dwconv")]
        groups = [sum(1 for n in dw if n.startswith(f"block{g}")) for g in range(1, 8)]
        base = (1, 2, 2, 3, 3, 4, 1)
        expected = [b if g in (0, 6) else math.ceil(b * depth) for g, b in enumerate(base)]
        assert groups == expected
        assert model.get_layer("block7a_project_conv").filters == 8 * int(320 * width / 8 + 0.5)
        kinds = {type(layer).__name__ for layer in model.layers}
        assert "Multiply" not in kinds  # no squeeze-excite
        acts = {
            layer.activation.__name__
            for layer in model.layers
            if type(layer).__name__ == "Activation"
        }
        assert acts == set()  # only ReLU6 layers (and the softmax)
        relus = {float(layer.max_value) for layer in model.layers if type(layer).__name__ == "ReLU"}
        assert relus == {6.0}


def test_tf_keras_builds_the_same_weights():
    """``km=tf_keras`` gives a tf-keras copy (for TFMOT) with identical weight shapes and outputs."""
    np = pytest.importorskip("numpy")
    tf_keras = pytest.importorskip("tf_keras")
    k3 = build_classifier("mobilenet_v3_small", 64, 10)
    tk = build_classifier("mobilenet_v3_small", 64, 10, km=tf_keras)
    assert type(tk).__module__.startswith("tf_keras")
    assert [tuple(w.shape) for w in tk.weights] == [tuple(w.shape) for w in k3.weights]
    k3.set_weights(tk.get_weights())
    x = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(k3(x)), tk(x).numpy(), atol=1e-5)
