"""A detector that is not the demo: a tf_keras.applications MobileNetV2
backbone (alpha 0.35, 96 px, random weights) with a small two-level SSD head,
one of whose levels is upsampled by a Conv2DTranspose (as an FPN does; the
op that a 2.21 dynamic-range conversion makes unloadable in tflite-runtime
2.14), and a recipe per output adapter.

Run as a script in a subprocess (`python mobilenet_detector.py FOLDER`) so the
test process itself never imports TensorFlow.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

INPUT_PX = 96
NUM_CLASSES = 3
# (cells per side, anchor sizes as fractions of the image)
LEVELS = ((6, (0.2, 0.3)), (3, (0.45, 0.7)))
ASPECTS = (0.5, 1.0, 2.0)

COMMON = """\
source: detector.h5
input: {height: 96, width: 96, channels: 3, mean: [127.5, 127.5, 127.5], std: [127.5, 127.5, 127.5]}
labels: [rectangle, ellipse, triangle]
dataset:
  generator: synthetic
  seed: 11
  splits: {calib: 16, val: 16}
training:
  dataset: {split: train, size: 32}
  loss: ssd-focal
  steps: 4
  batch_size: 8
  learning_rate: 1.0e-4
variants: [fp32, fp16, dynamic-int8, int8, uint8, int16x8, qat-int8, selective-int8]
"""

SSD_RECIPE = """\
name: mobilenet-ssd
adapter: ssd-postprocess
postprocess:
  anchors: anchors.npy
  max_detections: 20
  max_classes_per_detection: 1
  detections_per_class: 20
  use_regular_nms: false
  nms_score_threshold: 0.05
  nms_iou_threshold: 0.5
  scales: {y: 10.0, x: 10.0, h: 5.0, w: 5.0}
  scores: logits
variant_options:
  selective-int8: {max_layers: 2, max_map_drop: 0.0}
""" + COMMON

BOXES_SCORES_RECIPE = """\
name: mobilenet-raw
adapter: boxes-scores
postprocess:
  anchors: anchors.npy
  scales: {y: 10.0, x: 10.0, h: 5.0, w: 5.0}
  max_detections: 20
  nms_score_threshold: 0.05
  nms_iou_threshold: 0.5
  scores: logits
variant_options:
  selective-int8: {denylist: [Conv1, CONCATENATION]}
""" + COMMON


def anchors():
    import numpy as np

    rows = []
    for cells, sizes in LEVELS:
        centres = (np.arange(cells) + 0.5) / cells
        for cy in centres:
            for cx in centres:
                for size in sizes:
                    for aspect in ASPECTS:
                        rows.append((cy, cx, size / aspect**0.5, size * aspect**0.5))
    return np.asarray(rows, dtype=np.float32)


def build(folder: Path) -> dict[str, Path]:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tf_keras as keras
    from tf_keras import layers

    keras.utils.set_random_seed(5)
    per_cell = len(LEVELS[0][1]) * len(ASPECTS)
    backbone = keras.applications.MobileNetV2(
        input_shape=(INPUT_PX, INPUT_PX, 3), alpha=0.35, include_top=False, weights=None
    )
    c4 = backbone.get_layer("block_13_expand_relu").output  # 6x6
    c5 = backbone.output  # 3x3
    up = layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu", name="fpn_up")(c5)
    p4 = layers.Concatenate(name="fpn_merge")([layers.Conv2D(32, 1, name="fpn_lateral")(c4), up])
    boxes, logits = [], []
    for level, (feature, (cells, _)) in enumerate(zip((p4, c5), LEVELS)):
        n = cells * cells * per_cell
        box = layers.Conv2D(per_cell * 4, 3, padding="same", name=f"head{level}_box")(feature)
        cls = layers.Conv2D(per_cell * NUM_CLASSES, 3, padding="same", name=f"head{level}_cls")(feature)
        boxes.append(layers.Reshape((n, 4))(box))
        logits.append(layers.Reshape((n, NUM_CLASSES))(cls))
    model = keras.Model(
        backbone.input,
        [layers.Concatenate(axis=1, name="box_encodings")(boxes), layers.Concatenate(axis=1, name="class_logits")(logits)],
    )
    model.save(folder / "detector.h5")
    np.save(folder / "anchors.npy", anchors())
    recipes = {}
    for name, text in (("ssd", SSD_RECIPE), ("boxes-scores", BOXES_SCORES_RECIPE)):
        recipes[name] = folder / f"{name}.yaml"
        recipes[name].write_text(text)
    return recipes


if __name__ == "__main__":
    build(Path(sys.argv[1]))
