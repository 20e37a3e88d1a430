"""Trains the bundled demo detector (SSD-style, depthwise-separable backbone) reproducibly.

Usage (from the repository root)::

    .venv/bin/python models/demo-detector/train.py --out models/demo-detector
    .venv/bin/python models/demo-detector/train.py --out /tmp/dd --epochs 2 --train-images 500  # smoke run
    .venv/bin/python models/demo-detector/train.py --out models/demo-detector --eval-only --check-tflite

Writes ``detector.h5`` (tf_keras / Keras 2 float model, no optimizer state) and
``anchors.npy`` (float32 [N, 4]: ycenter, xcenter, height, width in [0, 1]) to
``--out``, then prints COCO mAP on the synthetic ``val`` split. With
``--check-tflite`` it also converts fp32 and full-integer int8 (128 ``calib``
images as representative data) and prints their mAP and latency per invoke.

Data comes from :mod:`harness.dataset.synth`: training images are rendered in
memory (and cached as one .npz under ``--cache``), ``calib``/``val`` are
written as COCO splits there. Seeds are fixed for Python, numpy and TF, and
TF op determinism is on, so a rerun on the same machine and TF build gives
the same weights.

Model contract (see model.yaml): input [B, 160, 160, 3] float32,
``(pixel - 127.5) / 127.5``, stretched from 256 x 192 with half-pixel-centre
bilinear resizing (no antialiasing, like ``tf.image.resize`` or cv2
``INTER_LINEAR``); outputs ``box_encodings`` [B, N, 4] (ty, tx, th, tw, SSD
scales 10, 10, 5, 5) and ``class_logits`` [B, N, 3] (sigmoid logits; no
background column).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tfmot needs Keras 2 later
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))  # a script in a folder with a hyphen: not importable as a package

import numpy as np  # noqa: E402

from harness.convert import ssd_training  # noqa: E402
from harness.dataset import synth  # noqa: E402
from harness.dataset.preprocess import resize  # noqa: E402

INPUT_SIZE_PX = 160
NUM_CLASSES = len(synth.CLASS_NAMES)
BOX_SCALES = {"y": 10.0, "x": 10.0, "h": 5.0, "w": 5.0}
# (grid cells per side, anchor sizes in source-image pixels): sizes form one
# geometric series 12 -> 101 px, two per level, covering the 10-90 px objects.
LEVELS: tuple[tuple[int, tuple[float, float]], ...] = (
    (20, (12.0, 18.5)),
    (10, (28.0, 43.0)),
    (5, (66.0, 101.0)),
)
ASPECT_RATIOS = (0.5, 1.0, 2.0)  # width / height in source pixels
ANCHORS_PER_CELL = len(LEVELS[0][1]) * len(ASPECT_RATIOS)
POSITIVE_IOU = ssd_training.POSITIVE_IOU
NEGATIVE_IOU = ssd_training.NEGATIVE_IOU
SEED = 20261128
POSTPROCESS = {
    "max_detections": 100,
    "max_classes_per_detection": 1,
    "detections_per_class": 100,
    "use_regular_nms": False,
    "nms_score_threshold": 0.05,
    "nms_iou_threshold": 0.5,
    "scales": BOX_SCALES,
    "scores": "logits",
}


# ---------------------------------------------------------------- data


def make_anchors() -> np.ndarray:
    """float32 [N, 4] (ycenter, xcenter, height, width), normalised; order = (level, y, x, anchor).

    That order is what a [B, H, W, A*4] head output reshaped to [B, H*W*A, 4] yields.
    """
    rows = []
    for cells, sizes_px in LEVELS:
        centres = (np.arange(cells, dtype=np.float64) + 0.5) / cells
        per_cell = [
            # Sizes are chosen in source pixels and normalised per axis, so the
            # anchors follow the 256x192 -> 160x160 stretch.
            (size / math.sqrt(ar) / synth.IMAGE_HEIGHT_PX, size * math.sqrt(ar) / synth.IMAGE_WIDTH_PX)
            for size in sizes_px
            for ar in ASPECT_RATIOS
        ]
        for cy in centres:
            for cx in centres:
                rows.extend((cy, cx, h, w) for h, w in per_cell)
    return np.asarray(rows, dtype=np.float32)


def resize_bilinear(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """The harness's own preprocessing (half-pixel bilinear, no antialiasing):
    training and measurement must see the same pixels."""
    return resize(image, out_h, out_w, "bilinear")


def normalise(pixels: np.ndarray) -> np.ndarray:
    return (np.asarray(pixels, dtype=np.float32) - 127.5) / 127.5


def encode_targets(
    boxes_xywh_px: np.ndarray, category_ids: np.ndarray, anchors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-anchor targets: class int8 [N] (-1 ignore, 0 background, 1..C) and box float32 [N, 4]."""
    x, y, w, h = np.asarray(boxes_xywh_px, dtype=np.float64).reshape(-1, 4).T
    gt = np.stack(
        [
            (y + h / 2) / synth.IMAGE_HEIGHT_PX,
            (x + w / 2) / synth.IMAGE_WIDTH_PX,
            h / synth.IMAGE_HEIGHT_PX,
            w / synth.IMAGE_WIDTH_PX,
        ],
        axis=1,
    )
    return ssd_training.encode_targets(
        gt, category_ids, anchors, BOX_SCALES, positive_iou=POSITIVE_IOU, negative_iou=NEGATIVE_IOU
    )


def _render_resized(job: tuple[str, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    split, index, seed = job
    rendered = synth.render_image(split, index, seed)
    pixels = np.rint(resize_bilinear(rendered.pixels, INPUT_SIZE_PX, INPUT_SIZE_PX)).astype(np.uint8)
    return pixels, rendered.boxes_xywh_px, rendered.category_ids


@dataclass(frozen=True)
class TrainSet:
    images: np.ndarray  # uint8 [K, 160, 160, 3], already resized
    classes: np.ndarray  # int8 [K, N]
    boxes: np.ndarray  # float32 [K, N, 4]


def load_train_set(cache_dir: Path, n_images: int, seed: int, anchors: np.ndarray) -> TrainSet:
    """Renders (2 processes) and encodes the train split once; later runs read the .npz cache."""
    cache = cache_dir / f"train_v{synth.GENERATOR_VERSION}_s{seed}_n{n_images}_{INPUT_SIZE_PX}px.npz"
    if cache.is_file():
        data = np.load(cache)
        images, all_boxes, all_ids, offsets = data["images"], data["boxes"], data["ids"], data["offsets"]
    else:
        jobs = [("train", i, seed) for i in range(n_images)]
        with multiprocessing.get_context("fork").Pool(2) as pool:
            results = pool.map(_render_resized, jobs, chunksize=64)
        images = np.stack([r[0] for r in results])
        all_boxes = np.concatenate([r[1] for r in results]).astype(np.float32)
        all_ids = np.concatenate([r[2] for r in results]).astype(np.int32)
        offsets = np.cumsum([0] + [len(r[1]) for r in results])
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + f".tmp{os.getpid()}.npz")
        np.savez(tmp, images=images, boxes=all_boxes, ids=all_ids, offsets=offsets)
        tmp.replace(cache)
    classes = np.zeros((n_images, anchors.shape[0]), dtype=np.int8)
    boxes = np.zeros((n_images, anchors.shape[0], 4), dtype=np.float32)
    for i in range(n_images):
        lo, hi = offsets[i], offsets[i + 1]
        classes[i], boxes[i] = encode_targets(all_boxes[lo:hi], all_ids[lo:hi], anchors)
    return TrainSet(images, classes, boxes)


def load_coco_split(paths: synth.SplitPaths) -> tuple[list[dict], np.ndarray]:
    """(COCO image records, normalised model inputs float32 [K, 160, 160, 3]) of a written split."""
    from PIL import Image

    images = json.loads(paths.annotations_json.read_text(encoding="utf-8"))["images"]
    inputs = np.stack(
        [
            normalise(resize_bilinear(np.asarray(Image.open(paths.images_dir / im["file_name"]).convert("RGB")),
                                      INPUT_SIZE_PX, INPUT_SIZE_PX))
            for im in images
        ]
    )
    return images, inputs


# ---------------------------------------------------------------- model


def build_model():  # -> tf_keras.Model (tf_keras imported lazily with TF)
    """MobileNet-v1-like depthwise-separable backbone, SSD heads at strides 8, 16, 32.

    ReLU6 everywhere and BatchNorm after every convolution (folded at
    conversion) keep activation ranges bounded, which is what keeps int8
    within a point or two of float.
    """
    import tf_keras as keras
    from tf_keras import layers

    def conv_bn(x, filters: int, kernel: int, stride: int, name: str):
        x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.ReLU(6.0, name=f"{name}_relu")(x)

    def separable(x, filters: int, stride: int, name: str):
        x = layers.DepthwiseConv2D(3, stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
        x = layers.BatchNormalization(name=f"{name}_dw_bn")(x)
        x = layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
        return conv_bn(x, filters, 1, 1, f"{name}_pw")

    inputs = keras.Input((INPUT_SIZE_PX, INPUT_SIZE_PX, 3), name="images")
    x = conv_bn(inputs, 16, 3, 2, "stem")  # 80x80
    x = separable(x, 32, 1, "b1")
    x = separable(x, 64, 2, "b2")  # 40x40
    x = separable(x, 64, 1, "b3")
    x = separable(x, 128, 2, "b4")  # 20x20
    c3 = separable(x, 128, 1, "b5")
    x = separable(c3, 256, 2, "b6")  # 10x10
    c4 = separable(x, 256, 1, "b7")
    x = separable(c4, 256, 2, "b8")  # 5x5
    c5 = separable(x, 256, 1, "b9")

    prior_bias = -math.log((1.0 - 0.01) / 0.01)  # start at p=0.01 so focal loss is stable
    box_parts, class_parts = [], []
    for level, (feature, (cells, _)) in enumerate(zip((c3, c4, c5), LEVELS)):
        n = cells * cells * ANCHORS_PER_CELL
        head = separable(feature, int(feature.shape[-1]), 1, f"head{level}")
        box = layers.Conv2D(ANCHORS_PER_CELL * 4, 3, padding="same", name=f"head{level}_box")(head)
        cls = layers.Conv2D(
            ANCHORS_PER_CELL * NUM_CLASSES,
            3,
            padding="same",
            bias_initializer=keras.initializers.Constant(prior_bias),
            name=f"head{level}_cls",
        )(head)
        box_parts.append(layers.Reshape((n, 4), name=f"head{level}_box_flat")(box))
        class_parts.append(layers.Reshape((n, NUM_CLASSES), name=f"head{level}_cls_flat")(cls))
    box_encodings = layers.Concatenate(axis=1, name="box_encodings")(box_parts)
    class_logits = layers.Concatenate(axis=1, name="class_logits")(class_parts)
    return keras.Model(inputs, [box_encodings, class_logits], name="demo_detector")


# ---------------------------------------------------------------- training


def train(model, data: TrainSet, epochs: int, batch_size: int, peak_lr: float, seed: int) -> None:
    import tensorflow as tf
    import tf_keras as keras

    steps_per_epoch = len(data.images) // batch_size
    total_steps = steps_per_epoch * epochs
    warmup_steps = min(300, total_steps // 10)

    def lr_at(step: int) -> float:
        if step < warmup_steps:
            return peak_lr * (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return peak_lr * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * progress)))

    optimizer = keras.optimizers.Adam(learning_rate=peak_lr)
    # The loss (focal + Huber) and the step live in harness.convert.ssd_training,
    # shared with quantization-aware fine-tuning (`qat-int8`).
    step = ssd_training.make_train_step(model, optimizer, NUM_CLASSES, (127.5,) * 3, (127.5,) * 3)

    order_rng = np.random.default_rng(seed)
    global_step = 0
    for epoch in range(epochs):
        started = time.perf_counter()
        order = order_rng.permutation(len(data.images))
        cls_sum = box_sum = 0.0
        for b in range(steps_per_epoch):
            idx = np.sort(order[b * batch_size : (b + 1) * batch_size])
            images = data.images[idx]
            if order_rng.uniform() < 0.5:
                # Flip the whole batch left-right: anchors are mirror-symmetric,
                # so targets flip by permuting anchors and negating tx.
                images = images[:, :, ::-1]
                cls_t, box_t = data.classes[idx][:, _FLIP_PERM], data.boxes[idx][:, _FLIP_PERM] * _FLIP_SIGN
            else:
                cls_t, box_t = data.classes[idx], data.boxes[idx]
            c, bx = step(
                tf.constant(np.ascontiguousarray(images)),
                tf.constant(cls_t),
                tf.constant(box_t),
                tf.constant(lr_at(global_step), tf.float32),
            )
            cls_sum += float(c)
            box_sum += float(bx)
            global_step += 1
        print(
            f"epoch {epoch + 1}/{epochs}: cls {cls_sum / steps_per_epoch:.4f} box {box_sum / steps_per_epoch:.4f} "
            f"lr {lr_at(global_step - 1):.2e} {time.perf_counter() - started:.0f} s",
            flush=True,
        )


def _flip_permutation(anchors: np.ndarray) -> np.ndarray:
    """Index map such that anchors[perm] is the horizontal mirror of anchors."""
    mirrored = anchors.copy()
    mirrored[:, 1] = 1.0 - mirrored[:, 1]
    lookup = {tuple(np.round(row, 5)): i for i, row in enumerate(anchors)}
    return np.asarray([lookup[tuple(np.round(row, 5))] for row in mirrored], dtype=np.int64)


_ANCHORS = make_anchors()
_FLIP_PERM = _flip_permutation(_ANCHORS)
_FLIP_SIGN = np.asarray([1.0, -1.0, 1.0, 1.0], dtype=np.float32)


# ---------------------------------------------------------------- evaluation


def coco_map(annotations_json: Path, images: list[dict], detections: list[dict]) -> tuple[float, float]:
    """(mAP@[.5:.95], mAP@.5) with pycocotools."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations_json))
        if not detections:
            return 0.0, 0.0
        dt = gt.loadRes(detections)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.imgIds = [im["id"] for im in images]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])


def detections_to_coco(image_id: int, out: dict[str, np.ndarray]) -> list[dict]:
    """Valid rows of one post-processed output -> COCO results in source-image pixels."""
    n = int(out["num_detections"].reshape(-1)[0])
    boxes = np.clip(out["boxes"].reshape(-1, 4)[:n], 0.0, 1.0)
    results = []
    for (ymin, xmin, ymax, xmax), cls, score in zip(
        boxes, out["classes"].reshape(-1)[:n], out["scores"].reshape(-1)[:n]
    ):
        x0, y0 = xmin * synth.IMAGE_WIDTH_PX, ymin * synth.IMAGE_HEIGHT_PX
        w, h = (xmax - xmin) * synth.IMAGE_WIDTH_PX, (ymax - ymin) * synth.IMAGE_HEIGHT_PX
        results.append(
            {
                "image_id": image_id,
                "category_id": int(cls) + 1,
                "bbox": [float(x0), float(y0), float(w), float(h)],
                "score": float(score),
            }
        )
    return results


def evaluate(
    predict: Callable[[np.ndarray], dict[str, np.ndarray]], paths: synth.SplitPaths, images: list[dict], inputs: np.ndarray
) -> tuple[float, float]:
    detections: list[dict] = []
    for record, x in zip(images, inputs):
        detections += detections_to_coco(record["id"], predict(x[None]))
    return coco_map(paths.annotations_json, images, detections)


def tflite_predictor(model_bytes: bytes, threads: int = 1) -> tuple[Callable[[np.ndarray], dict[str, np.ndarray]], Callable[[], float]]:
    """(predict on a float input, median invoke latency in ms over the calls so far)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes, num_threads=threads)
    runner = interpreter.get_signature_runner("serving_default")
    input_detail = runner.get_input_details()["images"]
    scale, zero_point = input_detail["quantization"]
    latencies_ns: list[int] = []

    def predict(x: np.ndarray) -> dict[str, np.ndarray]:
        if input_detail["dtype"] != np.float32:
            info = np.iinfo(input_detail["dtype"])
            x = np.clip(np.rint(x / scale + zero_point), info.min, info.max).astype(input_detail["dtype"])
        started = time.perf_counter_ns()
        out = runner(images=x)
        latencies_ns.append(time.perf_counter_ns() - started)
        return out

    return predict, lambda: float(np.median(latencies_ns)) / 1e6


def convert(model, anchors: np.ndarray, variant: str, calib_inputs: np.ndarray) -> bytes:
    """fp32 or int8 (full-integer, int8 input) .tflite bytes, enough for the mAP check here."""
    import tensorflow as tf

    from harness.convert.export import build_export_function, representative_dataset, variables_holder

    fn = build_export_function(model, anchors, POSTPROCESS, (INPUT_SIZE_PX, INPUT_SIZE_PX))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], variables_holder(model))
    converter.allow_custom_ops = True
    if variant == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset(calib_inputs)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.inference_input_type = tf.int8
    return converter.convert()


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--cache", type=Path, default=_REPO_ROOT / "reports" / ".cache" / "demo-detector")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--train-images", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--eval-only", action="store_true", help="skip training; evaluate --out/detector.h5")
    parser.add_argument("--check-tflite", action="store_true", help="also convert fp32/int8 and score them")
    parser.add_argument("--no-determinism", action="store_true", help="skip TF op determinism (faster)")
    args = parser.parse_args(argv)

    import tensorflow as tf
    import tf_keras as keras

    random.seed(args.seed)
    np.random.seed(args.seed)
    keras.utils.set_random_seed(args.seed)
    if not args.no_determinism:
        tf.config.experimental.enable_op_determinism()

    anchors = _ANCHORS
    started = time.perf_counter()
    if args.eval_only:
        model = keras.models.load_model(args.out / "detector.h5", compile=False)
    else:
        data = load_train_set(args.cache, args.train_images, args.seed, anchors)
        print(f"train set: {len(data.images)} images, {time.perf_counter() - started:.0f} s", flush=True)
        model = build_model()
        print(f"parameters: {model.count_params()}", flush=True)
        train(model, data, args.epochs, args.batch_size, args.lr, args.seed)
        args.out.mkdir(parents=True, exist_ok=True)
        model.save(args.out / "detector.h5", include_optimizer=False)
        np.save(args.out / "anchors.npy", anchors)
        print(f"trained in {time.perf_counter() - started:.0f} s; wrote {args.out}", flush=True)

    splits = synth.generate_dataset(args.cache / "synth", {"calib": 128, "val": 200}, seed=synth.DEFAULT_SEED)
    val_images, val_inputs = load_coco_split(splits["val"])

    from harness.convert.export import build_export_function

    fn = build_export_function(model, anchors, POSTPROCESS, (INPUT_SIZE_PX, INPUT_SIZE_PX))
    keras_map = evaluate(lambda x: {k: v.numpy() for k, v in fn(tf.constant(x)).items()}, splits["val"], val_images, val_inputs)
    print(f"keras  val mAP {keras_map[0]:.4f} mAP50 {keras_map[1]:.4f}", flush=True)
    if args.check_tflite:
        _, calib_inputs = load_coco_split(splits["calib"])
        for variant in ("fp32", "int8"):
            model_bytes = convert(model, anchors, variant, calib_inputs)
            predict, median_ms = tflite_predictor(model_bytes)
            result = evaluate(predict, splits["val"], val_images, val_inputs)
            print(
                f"{variant:6s} val mAP {result[0]:.4f} mAP50 {result[1]:.4f} "
                f"size {len(model_bytes)} B median invoke {median_ms():.2f} ms (1 thread)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
