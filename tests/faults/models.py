"""Models for the fault suite, built once per session in a subprocess (the
test process never imports TensorFlow): `python models.py FOLDER`.

- the tiny detector recipe (tests/integration/tiny_detector.py);
- hog.tflite: a bare float model with a small file (~40 KB) but a ~200 MB
  tensor arena, so loading it on a device with a memory limit gets the
  agent OOM-killed (the "model too big for the device" fault).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))


def build_hog(folder: Path) -> Path:
    import tensorflow as tf

    inputs = tf.keras.Input((512, 512, 3), batch_size=1)
    x = tf.keras.layers.Conv2D(48, 3, padding="same")(inputs)
    x = tf.keras.layers.Conv2D(48, 3, padding="same")(x)
    model = tf.keras.Model(inputs, tf.keras.layers.GlobalAveragePooling2D()(x))
    path = folder / "hog.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


if __name__ == "__main__":
    from tests.integration.tiny_detector import build

    out = Path(sys.argv[1])
    build(out)
    os.environ["TF_USE_LEGACY_KERAS"] = "0"  # tiny_detector set it; the hog is plain Keras 3
    build_hog(out)
