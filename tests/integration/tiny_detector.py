"""A tiny SSD-shaped detector (untrained, ~1k parameters) and its recipe,
for end-to-end runs that must not wait for the bundled demo model.

Run as a script in a subprocess (`python tiny_detector.py FOLDER`) so the
test process itself never imports TensorFlow.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

RECIPE = """\
name: tiny-detector
source: tiny.h5
input: {height: 32, width: 32, channels: 3, mean: [127.5, 127.5, 127.5], std: [127.5, 127.5, 127.5]}
labels: [rectangle, ellipse, triangle]
adapter: ssd-postprocess
postprocess:
  anchors: anchors.npy
  max_detections: 10
  max_classes_per_detection: 1
  detections_per_class: 10
  use_regular_nms: false
  nms_score_threshold: 0.05
  nms_iou_threshold: 0.5
  scales: {y: 10.0, x: 10.0, h: 5.0, w: 5.0}
  scores: logits
dataset:
  generator: synthetic
  seed: 7
  splits: {calib: 8, val: 8}
variants: [fp32, int8]
"""


def build(folder: Path) -> Path:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tf_keras as keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((32, 32, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, strides=4, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)  # 4x4 grid
    boxes = keras.layers.Reshape((16, 4), name="box_encodings")(keras.layers.Conv2D(4, 1)(x))
    logits = keras.layers.Reshape((16, 3), name="class_logits")(keras.layers.Conv2D(3, 1)(x))
    keras.Model(inputs, [boxes, logits]).save(folder / "tiny.h5")
    centres = (np.arange(4, dtype=np.float32) + 0.5) / 4
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    anchors = np.stack([yy.ravel(), xx.ravel(), np.full(16, 0.3), np.full(16, 0.3)], axis=1).astype(np.float32)
    np.save(folder / "anchors.npy", anchors)
    recipe = folder / "model.yaml"
    recipe.write_text(RECIPE)
    return recipe


def build_keras3(folder: Path) -> Path:
    """The same shape of model written by Keras 3 (.keras): fine for PTQ, not for QAT."""
    os.environ["TF_USE_LEGACY_KERAS"] = "0"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    inputs = keras.Input((32, 32, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, strides=8, padding="same", activation="relu")(inputs)
    boxes = keras.layers.Reshape((16, 4), name="box_encodings")(keras.layers.Conv2D(4, 1)(x))
    logits = keras.layers.Reshape((16, 3), name="class_logits")(keras.layers.Conv2D(3, 1)(x))
    keras.Model(inputs, [boxes, logits]).save(folder / "keras3.keras")
    return folder / "keras3.keras"


def build_unnamed_outputs(folder: Path) -> Path:
    """A model whose outputs no adapter understands (no box_encodings / class_logits)."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_keras as keras

    inputs = keras.Input((32, 32, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, strides=8, padding="same")(inputs)
    keras.Model(inputs, keras.layers.Flatten(name="features")(x)).save(folder / "features.h5")
    return folder / "features.h5"


def build_saved_models(folder: Path) -> None:
    """The tiny detector as a tf_keras SavedModel (keras/) and as a plain
    tf.Module SavedModel whose serving signature returns the named outputs (plain/)."""
    build(folder)
    import tensorflow as tf
    import tf_keras as keras

    model = keras.models.load_model(folder / "tiny.h5", compile=False)
    model.save(folder / "keras")

    class Plain(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([1, 32, 32, 3], tf.float32, name="pixels")])
        def serve(self, pixels):
            boxes, logits = self.model(pixels, training=False)
            return {"box_encodings": boxes, "class_logits": logits}

    plain = Plain()
    tf.saved_model.save(plain, str(folder / "plain"), signatures={"serving_default": plain.serve})


if __name__ == "__main__":
    {"tiny": build, "keras3": build_keras3, "unnamed": build_unnamed_outputs, "savedmodel": build_saved_models}[sys.argv[2] if len(sys.argv) > 2 else "tiny"](
        Path(sys.argv[1])
    )
