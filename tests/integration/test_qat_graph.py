"""The graph surgery of qat-int8's distillation (harness/convert/qat_distill.py)
on a tiny tf_keras model: SiLU convolutions split where the int8 file
requantises, with the same weights and variable names and outputs, and
which variables the fine-tuning trains."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # what the converter package sets before TensorFlow
tf_keras = pytest.importorskip("tf_keras")

from harness.convert import qat_distill  # noqa: E402


def _model(frozen_stem: bool):
    inputs = tf_keras.Input((8, 8, 3), name="images")
    stem = tf_keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="stem", trainable=not frozen_stem)(inputs)
    head = tf_keras.layers.Conv2D(4, 3, padding="same", activation="silu", name="head_conv")(stem)
    out = tf_keras.layers.Conv2D(2, 1, name="head_out")(head)
    return tf_keras.Model(inputs, tf_keras.layers.Reshape((64, 2), name="flat")(out))


def test_silu_split_keeps_weights_names_and_outputs():
    model = _model(frozen_stem=True)
    images = np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 3)).astype(np.float32)
    split = qat_distill.flatten(model, split_silu=True)
    names = [layer.name for layer in split.layers]
    assert "head_conv_sigmoid" in names and f"head_conv{qat_distill.SILU_SUFFIX}" in names
    assert split.get_layer("head_conv").activation.__name__ == "linear"
    assert sorted(v.name for v in split.weights) == sorted(v.name for v in model.weights)
    np.testing.assert_allclose(split.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-5, atol=1e-6)
    unsplit = qat_distill.flatten(model)
    assert "head_conv_sigmoid" not in [layer.name for layer in unsplit.layers]


def test_every_weight_trains_but_batchnorm():
    """tfmot's wrapper trains a kernel whatever the layer's flag says; the
    fine-tuning says so explicitly (every weight, a source's frozen stem
    too) and keeps BatchNorm's statistics and parameters out of it."""
    inputs = tf_keras.Input((8, 8, 3), name="images")
    x = tf_keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="stem", trainable=False)(inputs)
    x = tf_keras.layers.BatchNormalization(name="stem_bn")(x)
    x = tf_keras.layers.ReLU(name="stem_relu")(x)
    out = tf_keras.layers.Conv2D(2, 1, activation="silu", name="head")(x)
    model = tf_keras.Model(inputs, tf_keras.layers.Reshape((64, 2), name="flat")(out))
    qat_model = qat_distill.quantize(qat_distill.flatten(model, split_silu=True), keep_float=())
    names = sorted(v.name for v in qat_distill.training_variables(qat_model))
    assert names == ["head/bias:0", "head/kernel:0", "stem/kernel:0"], names
