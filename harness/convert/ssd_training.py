"""SSD training pieces shared by the demo's train.py and quantization-aware
fine-tuning (``qat-int8``): anchor matching, target encoding, the focal +
Huber loss (``loss: ssd-focal`` in a recipe) and one training step.

Box targets use the SSD centre-size encoding that ``TFLite_Detection_PostProcess``
decodes::

    ty = (gt_cy - anchor_cy) / anchor_h * y_scale     th = log(gt_h / anchor_h) * h_scale
    tx = (gt_cx - anchor_cx) / anchor_w * x_scale     tw = log(gt_w / anchor_w) * w_scale

Class targets per anchor: 0 background, 1..C the matched object's class,
-1 ignored (IoU between the negative and positive thresholds). Every object
also claims its best anchor, so small or odd-shaped objects always train.

The loss over one batch, normalised by the number of positive anchors:
sigmoid focal loss (alpha 0.25, gamma 2; Lin et al. 2017) on the classes of
every non-ignored anchor, plus Huber (delta 1) on the box encodings of the
positive anchors.

numpy at import; TensorFlow only inside the functions that build TF code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from harness.dataset.coco import CocoDataset
from harness.dataset.preprocess import InputSpec, load_image

POSITIVE_IOU = 0.5
NEGATIVE_IOU = 0.4
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0
BOX_OUTPUT = "box_encodings"
CLASS_OUTPUTS = ("class_logits", "class_scores")
LOSSES = ("ssd-focal",)


def corners(boxes_cyxhw: np.ndarray) -> np.ndarray:
    """[K, 4] (cy, cx, h, w) -> [K, 4] (ymin, xmin, ymax, xmax)."""
    cy, cx, h, w = np.asarray(boxes_cyxhw, dtype=np.float64).T
    return np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=1)


def iou_matrix(a_corners: np.ndarray, b_corners: np.ndarray) -> np.ndarray:
    """IoU of every pair: [K, 4] x [N, 4] corners -> [K, N]."""
    a, b = a_corners[:, None, :], b_corners[None, :, :]
    inter_h = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    inter_w = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = inter_h * inter_w
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-12)


def encode_targets(
    gt_cyxhw: np.ndarray,
    class_ids: np.ndarray,
    anchors: np.ndarray,
    scales: Mapping[str, float],
    *,
    positive_iou: float = POSITIVE_IOU,
    negative_iou: float = NEGATIVE_IOU,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-anchor targets for one image.

    ``gt_cyxhw``: [K, 4] normalised (cy, cx, h, w); ``class_ids``: [K] 1-based;
    ``anchors``: [N, 4] (cy, cx, h, w). Returns class int8 [N] (-1 ignore,
    0 background, 1..C) and box encodings float32 [N, 4].
    """
    n = anchors.shape[0]
    classes = np.zeros(n, dtype=np.int8)
    targets = np.zeros((n, 4), dtype=np.float32)
    gt = np.asarray(gt_cyxhw, dtype=np.float64).reshape(-1, 4)
    if len(gt) == 0:
        return classes, targets
    iou = iou_matrix(corners(gt), corners(anchors))  # [K, N]
    best_gt = iou.argmax(axis=0)
    best_iou = iou.max(axis=0)
    forced = iou.argmax(axis=1)
    best_gt[forced] = np.arange(len(gt))
    best_iou[forced] = 1.0
    positive = best_iou >= positive_iou
    classes[(best_iou >= negative_iou) & ~positive] = -1
    classes[positive] = np.asarray(class_ids)[best_gt[positive]]

    matched, anc = gt[best_gt[positive]], anchors[positive].astype(np.float64)
    targets[positive] = np.stack(
        [
            (matched[:, 0] - anc[:, 0]) / anc[:, 2] * scales["y"],
            (matched[:, 1] - anc[:, 1]) / anc[:, 3] * scales["x"],
            np.log(matched[:, 2] / anc[:, 2]) * scales["h"],
            np.log(matched[:, 3] / anc[:, 3]) * scales["w"],
        ],
        axis=1,
    )
    return classes, targets


@dataclass(frozen=True)
class TrainSet:
    images: np.ndarray  # uint8 [K, H, W, C], resized to the model input (pixels, not normalised)
    classes: np.ndarray  # int8 [K, N]
    boxes: np.ndarray  # float32 [K, N, 4]


def coco_train_set(
    dataset: CocoDataset,
    spec: InputSpec,
    labels: Sequence[str],
    anchors: np.ndarray,
    scales: Mapping[str, float],
    *,
    limit: int | None = None,
) -> TrainSet:
    """A COCO folder as training arrays: images resized as the recipe says,
    boxes normalised by each image's size (the model input is a plain
    stretch, so normalised coordinates carry over), classes in label order."""
    data = json.loads(dataset.annotations_json.read_text(encoding="utf-8"))
    label_of_category = {c["id"]: labels.index(c["name"]) + 1 for c in data["categories"] if c["name"] in labels}
    per_image: dict[int, list[tuple[list[float], int]]] = {}
    for ann in data["annotations"]:
        if ann.get("iscrowd") or ann["category_id"] not in label_of_category:
            continue
        per_image.setdefault(ann["image_id"], []).append((ann["bbox"], label_of_category[ann["category_id"]]))
    images = dataset.images[:limit] if limit else dataset.images
    pixels = np.zeros((len(images), spec.height, spec.width, spec.channels), dtype=np.uint8)
    classes = np.zeros((len(images), anchors.shape[0]), dtype=np.int8)
    boxes = np.zeros((len(images), anchors.shape[0], 4), dtype=np.float32)
    for i, image in enumerate(images):
        pixels[i] = np.clip(np.rint(load_image(image.path, spec)), 0, 255).astype(np.uint8)
        found = per_image.get(image.id, [])
        gt = np.asarray(
            [
                ((y + h / 2) / image.height, (x + w / 2) / image.width, h / image.height, w / image.width)
                for (x, y, w, h), _ in found
                if w > 0 and h > 0
            ],
            dtype=np.float64,
        ).reshape(-1, 4)
        ids = np.asarray([cls for (_, _, w, h), cls in found if w > 0 and h > 0], dtype=np.int64)
        classes[i], boxes[i] = encode_targets(gt, ids, anchors, scales)
    return TrainSet(pixels, classes, boxes)


def output_positions(output_names: Sequence[str]) -> tuple[int, int, bool]:
    """(index of the box output, index of the class output, whether the class
    output holds logits), chosen by name: tfmot renames layers `quant_<name>`."""
    plain = [name.removeprefix("quant_") for name in output_names]
    if BOX_OUTPUT not in plain or not any(name in plain for name in CLASS_OUTPUTS):
        raise ValueError(f"model outputs are {list(output_names)}; expected {BOX_OUTPUT!r} and one of {list(CLASS_OUTPUTS)}")
    class_name = next(name for name in CLASS_OUTPUTS if name in plain)
    return plain.index(BOX_OUTPUT), plain.index(class_name), class_name == "class_logits"


def ssd_focal_loss(box_pred: Any, class_out: Any, cls_t: Any, box_t: Any, num_classes: int, *, logits: bool) -> tuple[Any, Any]:
    """(classification loss, box loss) of one batch; see the module docstring."""
    import tensorflow as tf

    cls_t = tf.cast(cls_t, tf.int32)
    positive = tf.cast(cls_t > 0, tf.float32)
    valid = tf.cast(cls_t >= 0, tf.float32)
    num_pos = tf.maximum(1.0, tf.reduce_sum(positive))
    onehot = tf.one_hot(cls_t - 1, num_classes)  # background and ignore become all-zero rows
    if logits:
        ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=onehot, logits=class_out)
        p = tf.sigmoid(class_out)
    else:
        p = tf.clip_by_value(class_out, 1e-6, 1.0 - 1e-6)
        ce = -(onehot * tf.math.log(p) + (1.0 - onehot) * tf.math.log(1.0 - p))
    p_t = onehot * p + (1.0 - onehot) * (1.0 - p)
    alpha_t = onehot * FOCAL_ALPHA + (1.0 - onehot) * (1.0 - FOCAL_ALPHA)
    focal = alpha_t * tf.pow(1.0 - p_t, FOCAL_GAMMA) * ce
    cls_loss = tf.reduce_sum(focal * valid[..., None]) / num_pos
    diff = tf.abs(box_pred - box_t)
    huber = tf.where(diff < 1.0, 0.5 * diff * diff, diff - 0.5)
    box_loss = tf.reduce_sum(huber * positive[..., None]) / num_pos
    return cls_loss, box_loss


def make_train_step(
    model: Any, optimizer: Any, num_classes: int, mean: Sequence[float], std: Sequence[float]
) -> Callable[..., tuple[Any, Any]]:
    """A compiled step ``(images_u8, cls_t, box_t, lr) -> (cls_loss, box_loss)``:
    normalises ``(pixel - mean) / std`` as the recipe says, runs the model in
    training mode, applies the gradients of the summed loss."""
    import tensorflow as tf

    box_index, class_index, logits = output_positions(list(model.output_names))
    mean_t = tf.constant(np.asarray(mean, dtype=np.float32))
    std_t = tf.constant(np.asarray(std, dtype=np.float32))

    @tf.function(reduce_retracing=True)
    def step(images_u8: Any, cls_t: Any, box_t: Any, lr: Any) -> tuple[Any, Any]:
        images = (tf.cast(images_u8, tf.float32) - mean_t) / std_t
        with tf.GradientTape() as tape:
            outputs = model(images, training=True)
            cls_loss, box_loss = ssd_focal_loss(
                outputs[box_index], outputs[class_index], cls_t, box_t, num_classes, logits=logits
            )
            loss = cls_loss + box_loss
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.learning_rate.assign(lr)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return cls_loss, box_loss

    return step
