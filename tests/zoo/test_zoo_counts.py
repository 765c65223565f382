"""Analytic MAC counting."""

from __future__ import annotations

import pytest

pytest.importorskip("tensorflow")

import keras

from edgekit.zoo.counts import count_macs, layer_macs, model_stats


def test_macs_of_each_layer_kind():
    x = keras.Input((32, 16, 8))
    a = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="conv")(x)  # 16x8x4
    b = keras.layers.DepthwiseConv2D(5, padding="same", name="dw")(a)  # 16x8x4
    c = keras.layers.Conv2D(6, 1, groups=2, name="grouped")(b)  # in 4 -> 6, 2 groups
    d = keras.layers.Dense(10, name="dense")(keras.layers.GlobalAveragePooling2D()(c))
    model = keras.Model(x, d)
    assert layer_macs(model.get_layer("conv")) == 16 * 8 * 3 * 3 * 8 * 4
    assert layer_macs(model.get_layer("dw")) == 16 * 8 * 5 * 5 * 4
    assert layer_macs(model.get_layer("grouped")) == 16 * 8 * 1 * 1 * 2 * 6
    assert layer_macs(model.get_layer("dense")) == 6 * 10
    total = 16 * 8 * 3 * 3 * 8 * 4 + 16 * 8 * 5 * 5 * 4 + 16 * 8 * 2 * 6 + 60
    assert count_macs(model) == total
    stats = model_stats(model)
    assert stats.params == model.count_params() and stats.macs == total


def test_nested_models_are_counted():
    inner_in = keras.Input((8, 8, 3))
    inner = keras.Model(inner_in, keras.layers.Conv2D(2, 1)(inner_in))
    x = keras.Input((8, 8, 3))
    outer = keras.Model(x, keras.layers.Dense(3)(inner(x)))
    assert count_macs(outer) == 8 * 8 * 3 * 2 + 8 * 8 * 2 * 3
