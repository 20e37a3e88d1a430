"""Train the bundled YOLO-style detector (models/shapes-yolo/detector.h5).

An anchor-free detector on the synthetic shapes (harness.dataset.synth) in
the layout common YOLO exports have: ONE output [1, 4+nc, N], N the anchor
points of the stride 8/16/32 grids, rows cx, cy, w, h in input PIXELS of
the letterboxed [0, 1] RGB input, then the class scores after a sigmoid
(no objectness, no NMS). The box distances are ReLU values times the
level's stride, decoded in the graph and clipped to the input; the last
concatenation puts pixels (0..160) and scores (0..1) into one tensor, which
a full-int8 conversion gives one scale: the scores keep a handful of levels.
That shared scale is the measured cause of int8's loss (docs/quantization.md).

The backbone is the bundled demo detector's (trained on the same shapes),
frozen and cut at its stride 8/16/32 features, so only the SiLU heads train
(its features are computed once): 24 epochs of 800 images, about 4 minutes
of CPU (measured: 3 min 53 s user, 7 min 51 s wall on a loaded 2-core host;
a rerun, 270 s, gave the same weights to the bit).
Everything is built from stock tf_keras layers (the anchor grid is the
beta of a frozen elementwise BatchNormalization), so the .h5 loads without
custom objects.

    .venv/bin/python models/shapes-yolo/train.py      # rewrites detector.h5
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
DEMO_MODEL = HERE.parent / "demo-detector" / "detector.h5"
BACKBONE_OUTPUTS = ("b5_pw_relu", "b7_pw_relu", "b9_pw_relu")
INPUT_PX = 160  # the demo backbone's own input size
STRIDES = (8, 16, 32)
LABELS = ("rectangle", "ellipse", "triangle")
NUM_CLASSES = len(LABELS)
HEAD_CHANNELS = 64
# An object goes to the level whose stride suits its longer side (input px).
LEVEL_LIMITS_PX = (INPUT_PX * 3 / 16, INPUT_PX * 3 / 8)
TRAIN_IMAGES = int(os.environ.get("SHAPES_YOLO_TRAIN_IMAGES", "800"))
EPOCHS = int(os.environ.get("SHAPES_YOLO_EPOCHS", "24"))
BATCH = 16
LEARNING_RATE = 3e-3
DATA_SEED = 20261202  # the training split of harness.dataset.synth
WEIGHT_SEED = 7


def levels() -> list[tuple[int, int]]:
    return [(INPUT_PX // s, s) for s in STRIDES]


def targets(boxes_px: list[tuple[float, float, float, float]], classes: list[int]) -> tuple[np.ndarray, ...]:
    """Per anchor point: class one-hot [N, nc], box x1, y1, x2, y2 in input
    px [N, 4], positive mask [N]. A box is positive at the cells of the 3x3
    block round its centre whose centres fall inside it (centre sampling);
    smaller boxes are written last, so they win a shared cell."""
    sizes = [g * g for g, _ in levels()]
    offsets = np.cumsum([0] + sizes)
    cls = np.zeros((offsets[-1], NUM_CLASSES), np.float32)
    box = np.zeros((offsets[-1], 4), np.float32)
    pos = np.zeros((offsets[-1],), np.float32)
    by_area = sorted(zip(boxes_px, classes), key=lambda t: -(t[0][2] - t[0][0]) * (t[0][3] - t[0][1]))
    for (x1, y1, x2, y2), c in by_area:
        level = int(np.searchsorted(LEVEL_LIMITS_PX, max(x2 - x1, y2 - y1)))
        grid, stride = levels()[level]
        gx = min(grid - 1, int((x1 + x2) / 2 // stride))
        gy = min(grid - 1, int((y1 + y2) / 2 // stride))
        for j in range(max(0, gy - 1), min(grid, gy + 2)):
            for i in range(max(0, gx - 1), min(grid, gx + 2)):
                cx, cy = (i + 0.5) * stride, (j + 0.5) * stride
                if (x1 < cx < x2 and y1 < cy < y2) or (i, j) == (gx, gy):
                    k = offsets[level] + j * grid + i
                    cls[k] = 0.0
                    cls[k, c] = 1.0
                    box[k] = (x1, y1, x2, y2)
                    pos[k] = 1.0
    return cls, box, pos


def training_set(root: Path) -> tuple[np.ndarray, ...]:
    """Letterboxed [0, 1] images (the harness's own preprocessing) and targets."""
    import json

    from harness.dataset import synth
    from harness.dataset.coco import load_coco
    from harness.dataset.letterbox import letterbox_geometry, to_letterboxed_norm
    from harness.dataset.preprocess import InputSpec, load_image

    paths = synth.generate_split(root, "train", TRAIN_IMAGES, DATA_SEED)
    data = load_coco(paths.annotations_json, paths.images_dir)
    by_image: dict[int, list[dict]] = {}
    for ann in json.loads(paths.annotations_json.read_text())["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    spec = InputSpec(INPUT_PX, INPUT_PX, resize="letterbox")
    images, rows = [], []
    for image in data.images:
        geometry = letterbox_geometry(image.height, image.width, INPUT_PX, INPUT_PX)
        boxes, classes = [], []
        for ann in by_image.get(image.id, []):
            x, y, w, h = ann["bbox"]
            ymin, xmin, ymax, xmax = to_letterboxed_norm((y, x, y + h, x + w), geometry)
            boxes.append((xmin * INPUT_PX, ymin * INPUT_PX, xmax * INPUT_PX, ymax * INPUT_PX))
            classes.append(ann["category_id"] - 1)
        images.append(load_image(image.path, spec) / 255.0)
        rows.append(targets(boxes, classes))
    stack = lambda i: np.stack([r[i] for r in rows])  # noqa: E731
    return np.stack(images).astype(np.float32), stack(0), stack(1), stack(2)


def backbone(keras):
    """The demo detector's backbone cut at its stride 8/16/32 features, fed
    [0, 1] input (it was trained on [-1, 1]), frozen."""
    import re

    trained = keras.models.load_model(DEMO_MODEL, compile=False)
    config = trained.get_config()
    config["layers"] = [layer for layer in config["layers"] if re.match(r"images$|stem_|b\d_", layer["name"])]
    config["layers"][0]["config"]["batch_input_shape"] = (None, INPUT_PX, INPUT_PX, 3)
    config["output_layers"] = [[name, 0, 0] for name in BACKBONE_OUTPUTS]
    config["name"] = "backbone"
    cut = keras.Model.from_config(config)
    for layer in cut.layers:
        layer.set_weights(trained.get_layer(layer.name).get_weights())
    cut.trainable = False
    inputs = keras.Input((INPUT_PX, INPUT_PX, 3), name="images")
    scaled = keras.layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")(inputs)
    return keras.Model(inputs, cut(scaled), name="features")


def _level_decode(raw_ltrb, grid: int, stride: int, name: str, keras):
    """[B, g, g, 4] distance logits -> [B, g, g, 4] cx, cy, w, h in input px.

    ReLU distances times the stride (left, top, right, bottom), then a
    frozen 1x1 convolution turns them into (r-l)/2, (b-t)/2, l+r, t+b, and a
    frozen elementwise BatchNormalization adds each cell's centre to cx, cy.
    """
    dist = keras.layers.Activation("relu", name=f"{name}_dist")(raw_ltrb)
    mix = np.zeros((1, 1, 4, 4), np.float32)
    mix[0, 0, :, 0] = (-0.5 * stride, 0.0, 0.5 * stride, 0.0)
    mix[0, 0, :, 1] = (0.0, -0.5 * stride, 0.0, 0.5 * stride)
    mix[0, 0, :, 2] = (stride, 0.0, stride, 0.0)
    mix[0, 0, :, 3] = (0.0, stride, 0.0, stride)
    conv = keras.layers.Conv2D(4, 1, use_bias=False, trainable=False, name=f"{name}_xywh")
    xywh = conv(dist)
    conv.set_weights([mix])
    centres = np.zeros((grid, grid, 4), np.float32)
    centres[..., 0] = (np.arange(grid)[None, :] + 0.5) * stride
    centres[..., 1] = (np.arange(grid)[:, None] + 0.5) * stride
    shift = keras.layers.BatchNormalization(axis=[1, 2, 3], epsilon=1e-3, trainable=False, name=f"{name}_centres")
    centred = shift(xywh)
    ones = np.ones((grid, grid, 4), np.float32)
    shift.set_weights([w[None] for w in (ones, centres, np.zeros_like(ones), ones - 1e-3)])  # gamma, beta, mean, variance
    # Boxes live inside the input: clipping to [0, INPUT_PX] keeps a stray
    # background cell's box from widening the output's range further.
    return keras.layers.ReLU(max_value=float(INPUT_PX), name=f"{name}_clip")(centred)


def heads(features_model, keras):
    """Features -> [B, 4+nc, N]: per level two 3x3 SiLU convolutions of
    HEAD_CHANNELS, a box branch and a class branch."""
    feats = [keras.Input(t.shape[1:], name=f"p{3 + i}") for i, t in enumerate(features_model.outputs)]
    boxes, scores = [], []
    for f, (grid, stride) in zip(feats, levels()):
        name = f"p{stride.bit_length() - 1}"
        y = keras.layers.Conv2D(HEAD_CHANNELS, 3, padding="same", activation="silu", name=f"{name}_conv1")(f)
        y = keras.layers.Conv2D(HEAD_CHANNELS, 3, padding="same", activation="silu", name=f"{name}_conv2")(y)
        ltrb = keras.layers.Conv2D(4, 1, bias_initializer=keras.initializers.Constant(1.0), name=f"{name}_ltrb")(y)
        # Class bias at a 2% prior (RetinaNet), so training does not start by unlearning 0.5 everywhere.
        logits = keras.layers.Conv2D(NUM_CLASSES, 1, bias_initializer=keras.initializers.Constant(-4.0), name=f"{name}_cls")(y)
        xywh = _level_decode(ltrb, grid, stride, name, keras)
        boxes.append(keras.layers.Reshape((grid * grid, 4), name=f"{name}_boxes")(xywh))
        probs = keras.layers.Activation("sigmoid", name=f"{name}_sigmoid")(logits)
        scores.append(keras.layers.Reshape((grid * grid, NUM_CLASSES), name=f"{name}_scores")(probs))
    all_boxes = keras.layers.Concatenate(axis=1, name="boxes_px")(boxes)
    all_scores = keras.layers.Concatenate(axis=1, name="class_scores")(scores)
    # The one output, as common exports write it: boxes in pixels and scores side by side.
    head = keras.layers.Concatenate(axis=-1, name="head")([all_boxes, all_scores])
    return keras.Model(feats, keras.layers.Permute((2, 1), name="output0")(head), name="heads")


def train(root: Path, tf, keras):
    images, cls, box, pos = training_set(root)
    features_model = backbone(keras)
    feats = [np.asarray(f) for f in features_model.predict(images, batch_size=32, verbose=0)]
    head_model = heads(features_model, keras)
    optimizer = keras.optimizers.Adam(LEARNING_RATE)

    @tf.function
    def step(f, c, b, p):
        with tf.GradientTape() as tape:
            out = tf.transpose(head_model(f, training=False), [0, 2, 1])  # [B, N, 4+nc]
            cxcy, wh, prob = out[..., :2], out[..., 2:4], tf.clip_by_value(out[..., 4:], 1e-6, 1.0 - 1e-6)
            xyxy = tf.concat([cxcy - wh / 2, cxcy + wh / 2], -1) / INPUT_PX
            # Plain BCE, not focal: focal loss keeps scores low, and a detector
            # whose true positives score near 1 is what int8 users ship.
            bce = -(c * tf.math.log(prob) + (1.0 - c) * tf.math.log(1.0 - prob))
            n_pos = tf.maximum(tf.reduce_sum(p), 1.0)
            cls_loss = tf.reduce_sum(bce) / n_pos
            l1 = tf.reduce_sum(tf.reduce_sum(tf.abs(xyxy - b / INPUT_PX), -1) * p) / n_pos
            loss = cls_loss + 8.0 * l1
        grads = tape.gradient(loss, head_model.trainable_variables)
        optimizer.apply_gradients(zip(grads, head_model.trainable_variables))
        return loss

    rng = np.random.default_rng(WEIGHT_SEED)
    for epoch in range(EPOCHS):
        if epoch in (EPOCHS * 2 // 3, EPOCHS - 3):
            optimizer.learning_rate.assign(optimizer.learning_rate * 0.2)
        order = rng.permutation(len(images))
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            loss = step([f[idx] for f in feats], cls[idx], box[idx], pos[idx])
        print(f"epoch {epoch}: loss {float(loss):.3f}", file=sys.stderr)
    inputs = features_model.input
    return keras.Model(inputs, head_model(features_model(inputs)), name="shapes_yolo")


def main(out: Path) -> None:
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(WEIGHT_SEED)
    tf.config.experimental.enable_op_determinism()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="shapes-yolo-") as scratch:
        model = train(Path(scratch), tf, keras)
    model.save(out, include_optimizer=False)
    print(f"wrote {out} ({out.stat().st_size} bytes) in {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "detector.h5")
