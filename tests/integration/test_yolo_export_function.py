"""export.build_yolo_function: a Keras source with adapter yolo is exported
as its one decoded head, untouched, under the signature key output0; a model
with another output count is refused with the shapes it has."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
tf = pytest.importorskip("tensorflow")
tf_keras = pytest.importorskip("tf_keras")
litert = pytest.importorskip("ai_edge_litert.interpreter")

from harness.convert.export import ExportError, SIGNATURE_KEY, YOLO_OUTPUT_KEY, build_yolo_function  # noqa: E402

SIZE_PX = 32


def _head_model(outputs: int = 1):
    images = tf_keras.Input((SIZE_PX, SIZE_PX, 3), name="images")
    feats = tf_keras.layers.Conv2D(7, 3, strides=8, padding="same")(images)  # 4 x 4 cells
    head = tf_keras.layers.Permute((2, 1))(tf_keras.layers.Reshape((16, 7))(feats))  # [B, 4+3, 16]
    return tf_keras.Model(images, [head] * outputs if outputs > 1 else head)


def test_the_single_head_is_exported_as_it_is_under_output0():
    model = _head_model()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([build_yolo_function(model, (SIZE_PX, SIZE_PX))], model)
    interpreter = litert.Interpreter(model_content=converter.convert())
    image = np.random.default_rng(0).random((1, SIZE_PX, SIZE_PX, 3), dtype=np.float32)
    out = interpreter.get_signature_runner(SIGNATURE_KEY)(images=image)
    assert list(out) == [YOLO_OUTPUT_KEY]
    assert out[YOLO_OUTPUT_KEY].shape == (1, 7, 16)
    np.testing.assert_allclose(out[YOLO_OUTPUT_KEY], model(image).numpy(), rtol=1e-5, atol=1e-5)


def test_a_model_with_two_outputs_is_refused_with_their_shapes():
    with pytest.raises(ExportError, match=r"2 output\(s\) of shapes \[\(1, 7, 16\), \(1, 7, 16\)\]"):
        build_yolo_function(_head_model(outputs=2), (SIZE_PX, SIZE_PX))
