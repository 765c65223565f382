"""Magnitude pruning through the tf-keras twin, and structured channel pruning."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tensorflow_model_optimization")

import keras

from edgekit.compress.prune import (
    copy_weights_back,
    magnitude_prune,
    prune_finetune,
    sparsity_report,
    to_tf_keras,
    verify_twins,
)
from edgekit.compress.structured import (
    expansion_layers,
    param_count,
    plan_channels,
    prunable_layers,
    prune_channels,
)
from edgekit.errors import UsageError
from edgekit.zoo.registry import create_model, get_entry


def _model(name="mobilenet_v2", size=32, **kw):
    keras.utils.set_random_seed(0)
    kw.setdefault("num_classes", None if name.startswith("movenet") else 3)
    return create_model(name, input_size=size, width=0.35, **kw)


def _data(n=48, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32), rng.integers(0, 3, n)


def test_twin_matches_zoo_tf_keras_build_and_outputs():
    import tf_keras

    model = _model()
    twin = to_tf_keras(model)
    assert [x.name for x in twin.layers] == [x.name for x in model.layers]
    zoo_twin = create_model("mobilenet_v2", num_classes=3, input_size=32, width=0.35, km=tf_keras)
    zoo_twin.set_weights(model.get_weights())
    assert verify_twins(model, zoo_twin) <= 1e-6
    assert verify_twins(model, twin) <= 1e-5


def test_short_run_reaches_target_sparsity_and_survives_copy_back(tmp_path):
    model = _model()
    x, y = _data(32)
    pruned, report = prune_finetune(model, x, y, 0.5, epochs=1, batch_size=16)
    assert pruned is model
    assert report["total"] == pytest.approx(0.5, abs=0.02)
    assert all(abs(report[k] - 0.5) < 0.02 for k in report if k.endswith(("_expand", "_project")))
    assert report["block_1_depthwise"] == 0.0  # TFMOT leaves depthwise kernels dense
    # the sparse weights export and compress: gzip smaller than a dense export
    from edgekit.compress.quantize import post_training

    spec = get_entry("mobilenet_v2").spec(model)
    sparse = post_training(model, spec, tmp_path / "sparse.tflite", format="float32").path
    data = sparse.read_bytes()  # dense float32 weights gzip to ~93%; half zeros far less
    assert len(gzip.compress(data, 9)) < 0.75 * len(data)


def test_magnitude_prune_returns_its_callbacks_and_sets_frequency(tmp_path):
    import tensorflow_model_optimization as tfmot

    setup = magnitude_prune(
        to_tf_keras(_model(), check=False), 0.5, end_step=20, log_dir=str(tmp_path)
    )
    kinds = {type(c) for c in setup.callbacks}
    s = tfmot.sparsity.keras
    assert kinds == {s.UpdatePruningStep, s.PruningSummaries}
    assert setup.schedule.get_config()["config"]["frequency"] == 2
    with pytest.raises(UsageError):
        magnitude_prune(None, 1.5, end_step=20)
    with pytest.raises(UsageError):
        magnitude_prune(None, 0.5, end_step=0)


def test_copy_back_refuses_mismatched_shapes():
    a, b = _model(), _model(num_classes=4)
    with pytest.raises(UsageError):
        copy_weights_back(to_tf_keras(b, check=False), a)


def test_structured_ratio_zero_is_exact_and_half_is_thinner():
    model = _model()
    x, _ = _data(2)
    same, _ = prune_channels(model, 0.0)
    assert np.array_equal(np.asarray(model(x)), np.asarray(same(x)))
    thin, plan = prune_channels(model, 0.5)
    names = expansion_layers(model)
    assert names and set(names) <= set(plan.keep) == set(prunable_layers(model))
    assert "block_2_project" not in plan.keep  # it feeds the residual block_2_add
    for name in names:
        assert thin.get_layer(name).filters == plan.after[name] <= plan.before[name]
        assert (
            thin.get_layer(name.replace("_expand", "_depthwise")).kernel.shape[2]
            == plan.after[name]
        )
    assert param_count(thin) < 0.8 * param_count(model)
    assert thin.outputs[0].shape == model.outputs[0].shape


def test_structured_keeps_largest_l1_channels():
    model = _model()
    layer = model.get_layer("block_1_expand")
    k = np.asarray(layer.kernel).copy()
    k[..., :8] *= 100.0  # make the first 8 channels the strongest
    layer.kernel.assign(k)
    plan = plan_channels(model, 0.5, layers=["block_1_expand"])
    assert set(range(8)) <= set(plan.keep["block_1_expand"].tolist())


def test_structured_refuses_residual_coupled_channels():
    with pytest.raises(UsageError, match="combines several tensors"):
        prune_channels(_model(), 0.5, layers=["block_1_project"])


def test_structured_thins_every_pointwise_conv_of_a_mobilenet_v1():
    model = _model("mobilenet_v1")
    names = prunable_layers(model)
    pointwise = [f"conv_pw_{i}" for i in range(1, 14)]
    assert set(pointwise) <= set(names)
    assert not any(isinstance(model.get_layer(n), keras.layers.DepthwiseConv2D) for n in names)
    thin, _ = prune_channels(model, 0.5)
    x, _ = _data(2)
    assert param_count(thin) < 0.5 * param_count(model)
    assert thin(x).shape == model(x).shape


def test_nothing_prunable_is_a_clear_error():
    inp = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 1)(inp)
    out = keras.layers.Add()([a, keras.layers.Conv2D(4, 1)(inp)])
    with pytest.raises(UsageError, match="no convolution has channels private"):
        prune_channels(keras.Model(inp, out), 0.5)


def test_structured_on_detector_and_pose_backbones():
    for name, kw in (("ssdlite_mobilenet_v2", {"num_classes": 2}), ("movenet_mobilenet_v2", {})):
        model = _model(name, size=64, **kw)
        thin, _ = prune_channels(model, 0.5)
        assert param_count(thin) < param_count(model)
        x, _ = _data(1, 64)
        outs = thin(x)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        ref = model(x)
        ref = ref if isinstance(ref, (list, tuple)) else [ref]
        assert [tuple(o.shape) for o in outs] == [tuple(r.shape) for r in ref]


def test_sparsity_report_counts_zeros():
    model = _model()
    w = model.get_layer("block_2_expand").kernel
    w.assign(np.zeros(w.shape, np.float32))
    rep = sparsity_report(model)
    assert rep["block_2_expand"] == 1.0 and 0 < rep["total"] < 1


def test_data_driven_pruning_keeps_a_constant_channel_as_bias():
    """A channel that is constant (zero kernel, large bias, as a folded BatchNorm can leave)
    has the smallest L1 norm: plain pruning drops it and shifts the output; with images its
    mean moves into the reading conv's bias and the output is unchanged."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 3))
    a = keras.layers.Conv2D(8, 1, activation="relu", name="a")(inp)
    out = keras.layers.Conv2D(4, 1, name="b")(a)
    model = keras.Model(inp, out)
    k, bias = model.get_layer("a").get_weights()
    k[..., 0], bias[0] = 0.0, 5.0
    model.get_layer("a").set_weights([k, bias])
    x = np.random.default_rng(0).uniform(-1, 1, (8, 6, 6, 3)).astype(np.float32)
    plan = plan_channels(model, 0.5, divisor=1, min_channels=1)  # L1: drops channel 0
    assert 0 not in plan.keep["a"]
    plain, _ = prune_channels(model, 0.5, plan=plan)
    smart, _ = prune_channels(model, 0.5, plan=plan, images=x)  # same channels, compensated
    ref = np.asarray(model(x))
    shift_plain = np.abs((np.asarray(plain(x)) - ref).mean((0, 1, 2))).max()
    shift_smart = np.abs((np.asarray(smart(x)) - ref).mean((0, 1, 2))).max()
    assert shift_plain > 0.5 and shift_smart < 1e-3 * max(shift_plain, 1.0)
    chosen = plan_channels(model, 0.5, divisor=1, min_channels=1, images=x)
    assert 0 not in chosen.keep["a"]  # no spread, nothing to lose once its mean is in the bias
