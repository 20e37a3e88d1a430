"""A tiny anchor-free detector in the Ultralytics YOLO output layouts,
trained on the synthetic shapes, its exports and its eval set.

The layouts reproduce what Ultralytics writes to TFLite (its onnx2tf path:
NHWC input, RGB in [0, 1], letterboxed): ultralytics/nn/modules/head.py
Detect._inference concatenates decoded xywh and sigmoid class scores into
one [1, 4+nc, N] tensor, N the anchor points of the stride 8/16/32 grids;
ultralytics/utils/export/litert.py divides the box channels by the input
width/height so one int8 scale holds boxes and scores; its full-integer
file has int8 input and output. YOLOv5 heads give [1, 3N, 5+nc] with
objectness; end-to-end heads [1, 300, 6] = x1, y1, x2, y2, score, class,
here in input pixels as litert-torch writes them.

Run as a script in a subprocess (`python yolo_detector.py FOLDER`) so the
test process never imports TensorFlow. Writes v8.tflite, v8-fp16.tflite,
v8-int8.tflite, v5.tflite, end2end.tflite and data/, a COCO root whose val
split is the eval set.

The heads' trained weights are committed (HEADS_WEIGHTS): training them
took a CPU-minute of every test run, and fixed weights make every export
the same from run to run. tests/fixtures/yolo-detector/train_heads.py
retrains them with `train` below (fixed seeds).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

INPUT_PX = 128
STRIDES = (8, 16, 32)
NUM_CLASSES = 3
TRAIN_IMAGES = 320
EPOCHS = 20
BATCH = 16
SEED = 20261202
# Objects go to the level whose stride suits their longer side (input px).
LEVEL_LIMITS_PX = (24.0, 48.0)
MAX_DISTANCE = 2.5
DEMO_MODEL = Path(__file__).resolve().parents[2] / "models" / "demo-detector" / "detector.h5"
HEADS_WEIGHTS = Path(__file__).resolve().parents[1] / "fixtures" / "yolo-detector" / "heads.npz"
TRAINING_SEED = 3
HEADS_NAME = "yolo_heads"
BACKBONE_OUTPUTS = ("b5_pw_relu", "b7_pw_relu", "b9_pw_relu")

VAL_IMAGES = 48


def _levels():
    return [(INPUT_PX // s, s) for s in STRIDES]


def _targets(boxes_px, classes, np):
    """Per anchor point: class one-hot, box (x1, y1, x2, y2 in input px),
    positive mask. A box is positive at the 3x3 cells round its centre on
    the level its size picks (cells whose centre lies inside it)."""
    n = sum(g * g for g, _ in _levels())
    cls = np.zeros((n, NUM_CLASSES), np.float32)
    box = np.zeros((n, 4), np.float32)
    pos = np.zeros((n,), np.float32)
    offsets = np.cumsum([0] + [g * g for g, _ in _levels()])
    for (x1, y1, x2, y2), c in sorted(zip(boxes_px, classes), key=lambda t: -(t[0][2] - t[0][0]) * (t[0][3] - t[0][1])):
        side = max(x2 - x1, y2 - y1)
        level = int(np.searchsorted(LEVEL_LIMITS_PX, side))
        grid, stride = _levels()[level]
        gx, gy = int((x1 + x2) / 2 // stride), int((y1 + y2) / 2 // stride)
        for j in range(max(0, gy - 1), min(grid, gy + 2)):
            for i in range(max(0, gx - 1), min(grid, gx + 2)):
                cx, cy = (i + 0.5) * stride, (j + 0.5) * stride
                if x1 < cx < x2 and y1 < cy < y2 or (i, j) == (gx, gy):
                    k = offsets[level] + j * grid + i
                    cls[k] = 0.0
                    cls[k, c] = 1.0
                    box[k] = (x1, y1, x2, y2)
                    pos[k] = 1.0
    return cls, box, pos


def _dataset(root: Path, split: str, size: int, np):
    """Letterboxed [0, 1] images (the harness's own preprocessing) and targets."""
    from harness.dataset import synth
    from harness.dataset.coco import load_coco
    from harness.dataset.letterbox import letterbox_geometry, to_letterboxed_norm
    from harness.dataset.preprocess import InputSpec, load_image

    paths = synth.generate_split(root, split, size, SEED)
    data = load_coco(paths.annotations_json, paths.images_dir)
    import json

    anns = json.loads(paths.annotations_json.read_text())["annotations"]
    spec = InputSpec(INPUT_PX, INPUT_PX, resize="letterbox")
    images, targets = [], []
    for image in data.images:
        geometry = letterbox_geometry(image.height, image.width, INPUT_PX, INPUT_PX)
        boxes, classes = [], []
        for ann in (a for a in anns if a["image_id"] == image.id):
            x, y, w, h = ann["bbox"]
            ymin, xmin, ymax, xmax = to_letterboxed_norm((y, x, y + h, x + w), geometry)
            boxes.append((xmin * INPUT_PX, ymin * INPUT_PX, xmax * INPUT_PX, ymax * INPUT_PX))
            classes.append(ann["category_id"] - 1)
        images.append(load_image(image.path, spec) / 255.0)
        targets.append(_targets(boxes, classes, np))
    stack = lambda i: np.stack([t[i] for t in targets])  # noqa: E731
    return np.stack(images).astype(np.float32), stack(0), stack(1), stack(2)


def _anchor_grid(np):
    """(cx, cy, stride) of every anchor point, in input px, level by level."""
    rows = []
    for grid, stride in _levels():
        jj, ii = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        rows.append(np.stack([(ii.ravel() + 0.5) * stride, (jj.ravel() + 0.5) * stride, np.full(grid * grid, stride)], 1))
    return np.concatenate(rows).astype(np.float32)


def _backbone(keras):
    """The bundled demo detector's backbone (trained on the same synthetic
    shapes), cut at its stride 8/16/32 features and fed [0, 1] input (it
    was trained on [-1, 1]): the heads then learn in seconds."""
    trained = keras.models.load_model(DEMO_MODEL, compile=False)
    config = trained.get_config()
    # The backbone alone (its SSD heads reshape to a fixed size), rebuilt
    # for this input size: it is all convolutions.
    config["layers"] = [layer for layer in config["layers"] if re.match(r"images$|stem_|b\d_", layer["name"])]
    config["layers"][0]["config"]["batch_input_shape"] = (None, INPUT_PX, INPUT_PX, 3)
    config["output_layers"] = [[name, 0, 0] for name in BACKBONE_OUTPUTS]
    cut = keras.Model.from_config(config)
    for layer in cut.layers:
        layer.set_weights(trained.get_layer(layer.name).get_weights())
    cut.trainable = False
    inputs = keras.Input((INPUT_PX, INPUT_PX, 3), name="images")
    return keras.Model(inputs, cut(keras.layers.Rescaling(2.0, offset=-1.0)(inputs)))


def _heads(backbone, keras):
    """One small head per level: [1, N, 4 + nc] of distance logits (left,
    top, right, bottom) and class logits, level by level."""
    feats = [keras.Input(t.shape[1:]) for t in backbone.outputs]
    outs = []
    for f in feats:
        y = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(f)
        y = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(y)
        # Class bias at a 2% prior, so the first steps are not spent
        # unlearning a score of 0.5 on every background cell (RetinaNet).
        prior = [0.0] * 4 + [-4.0] * NUM_CLASSES
        y = keras.layers.Conv2D(4 + NUM_CLASSES, 1, bias_initializer=keras.initializers.Constant(prior))(y)
        outs.append(keras.layers.Reshape((-1, 4 + NUM_CLASSES))(y))
    return keras.Model(feats, keras.layers.Concatenate(axis=1)(outs), name=HEADS_NAME)


def _decode(raw, grid, tf):
    """[B, N, 4+nc] raw -> normalised xyxy [B, N, 4] and sigmoid scores [B, N, nc]."""
    # Bounded distances (at most MAX_DISTANCE strides) keep the head's range,
    # and so an int8 output's scale, close to [0, 1].
    dist = tf.sigmoid(raw[..., :4]) * MAX_DISTANCE * grid[:, 2:3]
    x1 = grid[:, 0] - dist[..., 0]
    y1 = grid[:, 1] - dist[..., 1]
    x2 = grid[:, 0] + dist[..., 2]
    y2 = grid[:, 1] + dist[..., 3]
    return tf.stack([x1, y1, x2, y2], -1) / INPUT_PX, tf.sigmoid(raw[..., 4:])


def train(folder: Path, tf, keras, np):
    images, cls, box, pos = _dataset(folder / "data", "train", TRAIN_IMAGES, np)
    grid = tf.constant(_anchor_grid(np))
    backbone = _backbone(keras)
    feats = [np.asarray(f) for f in backbone.predict(images, batch_size=32, verbose=0)]  # frozen: computed once
    heads = _heads(backbone, keras)
    optimizer = keras.optimizers.Adam(3e-3)

    @tf.function
    def step(f, c, b, p):
        with tf.GradientTape() as tape:
            raw = heads(f, training=True)
            xyxy, _ = _decode(raw, grid, tf)
            bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=c, logits=raw[..., 4:])
            prob = tf.sigmoid(raw[..., 4:])
            alpha = 0.25 * c + 0.75 * (1.0 - c)
            focal = tf.reduce_sum(alpha * bce * tf.abs(c - prob) ** 2) / tf.maximum(tf.reduce_sum(p), 1.0)
            l1 = tf.reduce_sum(tf.abs(xyxy - b / INPUT_PX), -1) * p
            loss = focal + 8.0 * tf.reduce_sum(l1) / tf.maximum(tf.reduce_sum(p), 1.0)
        grads = tape.gradient(loss, heads.trainable_variables)
        optimizer.apply_gradients(zip(grads, heads.trainable_variables))
        return loss

    rng = np.random.default_rng(0)
    for epoch in range(EPOCHS):
        if epoch in (EPOCHS * 2 // 3, EPOCHS - 3):
            optimizer.learning_rate.assign(optimizer.learning_rate * 0.2)
        order = rng.permutation(len(images))
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            loss = step([f[idx] for f in feats], cls[idx], box[idx], pos[idx])
        print(f"epoch {epoch}: loss {float(loss):.3f}", file=sys.stderr)
    inputs = backbone.input
    return keras.Model(inputs, heads(backbone(inputs))), grid, images


def save_heads(model, path: Path, np) -> None:
    """The trained heads' weights (the backbone is the demo detector's), as
    float16: half the bytes in the repository (0.9 MB, not 1.8), and the
    tests' detector is these rounded weights exactly."""
    heads = model.get_layer(HEADS_NAME)
    np.savez_compressed(path, *(weights.astype(np.float16) for weights in heads.get_weights()))


def committed(folder: Path, tf, keras, np):
    """What `train` returns, with the heads' weights read from HEADS_WEIGHTS
    instead of trained: (model, anchor grid, the training images that
    calibrate the int8 export)."""
    images, *_ = _dataset(folder / "data", "train", TRAIN_IMAGES, np)
    backbone = _backbone(keras)
    heads = _heads(backbone, keras)
    with np.load(HEADS_WEIGHTS) as stored:
        heads.set_weights([stored[f"arr_{i}"].astype(np.float32) for i in range(len(stored.files))])
    inputs = backbone.input
    return keras.Model(inputs, heads(backbone(inputs))), tf.constant(_anchor_grid(np)), images


def export_all(folder: Path, model, grid, calib, tf, np) -> None:
    from harness.convert.export import variables_holder

    holder = variables_holder(model)
    spec = tf.TensorSpec([1, INPUT_PX, INPUT_PX, 3], tf.float32, name="images")

    def v8(images):
        xyxy, scores = _decode(model(images, training=False), grid, tf)
        xywh = tf.concat([(xyxy[..., :2] + xyxy[..., 2:]) / 2, xyxy[..., 2:] - xyxy[..., :2]], -1)
        return tf.transpose(tf.concat([xywh, scores], -1), [0, 2, 1])  # [1, 4+nc, N]

    def v5(images):
        head = tf.transpose(v8(images), [0, 2, 1])  # [1, N, 4+nc]
        obj = tf.reduce_max(head[..., 4:], -1, keepdims=True)
        rows = tf.concat([head[..., :4], obj, head[..., 4:] / tf.maximum(obj, 1e-6)], -1)
        return tf.reshape(tf.tile(rows[:, :, None, :], [1, 1, 3, 1]), [1, -1, 5 + NUM_CLASSES])  # 3 anchors a cell

    def end2end(images):
        xyxy, scores = _decode(model(images, training=False), grid, tf)
        xyxy, scores = xyxy[0] * INPUT_PX, scores[0]
        best, label = tf.reduce_max(scores, -1), tf.cast(tf.argmax(scores, -1), tf.float32)
        shifted = xyxy + label[:, None] * (2.0 * INPUT_PX)  # class-aware, one NMS
        picked, _, valid = tf.raw_ops.NonMaxSuppressionV5(
            boxes=tf.gather(shifted, [1, 0, 3, 2], axis=1), scores=best, max_output_size=300,
            iou_threshold=0.7, score_threshold=0.001, soft_nms_sigma=0.0, pad_to_max_output_size=True,
        )
        rows = tf.concat([tf.gather(xyxy, picked), tf.gather(best, picked)[:, None], tf.gather(label, picked)[:, None]], -1)
        live = tf.cast(tf.range(300) < valid, tf.float32)[:, None]
        return (rows * live)[None]  # [1, 300, 6]

    def convert(fn, name, **options):
        concrete = tf.function(fn, input_signature=[spec]).get_concrete_function()
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], holder)
        for key, value in options.items():
            if key == "supported_types":
                converter.target_spec.supported_types = value
            elif key == "supported_ops":
                converter.target_spec.supported_ops = value
            else:
                setattr(converter, key, value)
        (folder / f"{name}.tflite").write_bytes(converter.convert())

    convert(v8, "v8")
    convert(v8, "v8-fp16", optimizations=[tf.lite.Optimize.DEFAULT], supported_types=[tf.float16])
    convert(
        v8, "v8-int8", optimizations=[tf.lite.Optimize.DEFAULT],
        representative_dataset=lambda: ([calib[i : i + 1]] for i in range(32)),
        supported_ops=[tf.lite.OpsSet.TFLITE_BUILTINS_INT8], inference_input_type=tf.int8, inference_output_type=tf.int8,
    )
    convert(v5, "v5")
    convert(end2end, "end2end")


def write_val_dataset(folder: Path) -> None:
    """The eval set as a COCO root next to the training split (data/annotations/
    instances_val.json, data/val/): `harness run --model X.tflite --dataset data`."""
    from harness.dataset import synth

    synth.generate_split(folder / "data", "val", VAL_IMAGES, SEED)


def build(folder: Path) -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    model, grid, images = committed(folder, tf, keras, np)
    export_all(folder, model, grid, images, tf, np)
    write_val_dataset(folder)


if __name__ == "__main__":
    build(Path(sys.argv[1]))
