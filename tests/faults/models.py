"""Models for the fault suite, built once per session in a subprocess (the
test process never imports TensorFlow): `python models.py FOLDER`.

- the tiny detector recipe (tests/integration/tiny_detector.py);
- hog.tflite: a bare float model with a small file but a ~200 MB tensor
  arena, so loading it on a device with a memory limit gets the
  agent OOM-killed (the "model too big for the device" fault).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))


def build_hog(folder: Path) -> Path:
    import tensorflow as tf

    # Cheap to compute (nearest-neighbour upsampling, a scale, an add) but
    # three 64 MB tensors live at once; the input stays small because the
    # agent keeps 16 random inputs in memory.
    inputs = tf.keras.Input((64, 64, 4), batch_size=1)
    big = tf.keras.layers.UpSampling2D(32)(inputs)
    scaled = tf.keras.layers.Rescaling(2.0)(big)
    model = tf.keras.Model(inputs, tf.keras.layers.GlobalAveragePooling2D()(tf.keras.layers.Add()([big, scaled])))
    path = folder / "hog.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


if __name__ == "__main__":
    from tests.integration.tiny_detector import build

    out = Path(sys.argv[1])
    build(out)
    os.environ["TF_USE_LEGACY_KERAS"] = "0"  # tiny_detector set it; the hog is plain Keras 3
    build_hog(out)
