"""Two .tflite files laid out as the real SSD exporters write them, made
from the bundled demo detector (its weights, anchors and post-process
settings), plus one that fits no adapter.

Run as a script in a subprocess (`python ssd_exports.py FOLDER`) so the test
process itself never imports TensorFlow. Writes:

- ``od_api.tflite``: the TF Object Detection API's TF2 path
  (research/object_detection/export_tflite_graph_lib_tf2.py, SSDModule, then
  ``TFLiteConverter.from_saved_model``). Its ``inference_fn`` takes one float
  input named ``input`` (normalised to [-1, 1]), and returns the post-process
  composite's outputs *reversed* (``...)[::-1]``, "tf.function seems to
  reverse order of inputs"). The MLIR legalisation binds the composite's
  results to the op's outputs by position (boxes, classes, scores, count), so
  the signature is a tuple: ``output_0`` = count, ``output_1`` = scores,
  ``output_2`` = classes, ``output_3`` = boxes, tensors
  ``StatefulPartitionedCall:0..3`` in that order, and ``get_output_details()``
  lists them as :1, :3, :0, :2 (scores, boxes, count, classes), the
  scrambled order of tensorflow#44481 / tensorflow/models#10970.
- ``efficientdet_lite.tflite``: Model Maker's EfficientDet-Lite path
  (tensorflow_examples/lite/model_maker/third_party/efficientdet/keras/
  postprocess.py ``postprocess_tflite``: the same reversed composite; the
  export takes raw pixels as ``images`` and normalises inside the graph, and
  is fully integer-quantised with ``inference_input_type = tf.uint8`` and
  float outputs). So: uint8 input with the quantisation the calibration on
  raw 0..255 pixels gives (scale 1, zero point 0), outputs listed score,
  location, count, classes, and the label file packed in by the metadata
  writer.
- ``classifier.tflite``: one [1, 3] output, which no detection adapter fits.
"""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "models" / "demo-detector"
INPUT_PX = 160
PP = {
    "max_detections": 100, "max_classes_per_detection": 1, "detections_per_class": 100, "use_regular_nms": False,
    "nms_score_threshold": 0.05, "nms_iou_threshold": 0.5, "scales": {"y": 10.0, "x": 10.0, "h": 5.0, "w": 5.0},
}


def _module(tf, model, anchors, *, input_name: str, raw_pixels: bool):
    """A tf.Module whose inference_fn is shaped like the exporters' (see the docstring)."""
    from harness.convert import export

    postprocess = export._make_postprocess(PP, int(model.outputs[1].shape[-1]))  # noqa: SLF001 - the op's composite
    anchors_const = tf.constant(anchors)
    background = tf.zeros([1, anchors.shape[0], 1], tf.float32)

    class Module(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([1, INPUT_PX, INPUT_PX, 3], tf.float32, name=input_name)])
        def inference_fn(self, image):
            normalised = (image - 127.5) / 127.5 if raw_pixels else image
            box_encodings, logits = self.model(normalised, training=False)
            scores = tf.concat([background, tf.sigmoid(logits)], axis=-1)
            return postprocess(box_encodings, scores, anchors_const)[::-1]

    return Module()


def _convert(tf, module, folder: Path, *, int8_uint8_input: bool) -> bytes:
    saved = folder / ("saved-" + module.inference_fn.input_signature[0].name)
    tf.saved_model.save(module, str(saved), signatures=module.inference_fn.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    converter.allow_custom_ops = True
    if int8_uint8_input:
        calib = _calibration_pixels()
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image] for image in calib)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.float32
    return converter.convert()


def _calibration_pixels() -> list:
    """Raw 0..255 pixels of synthetic calib images (stretched like the harness
    feeds them), plus a black and a white frame so the input's range is the
    full 0..255 and the calibrated input scale comes out 1, zero point 0."""
    import numpy as np

    from harness.dataset.preprocess import InputSpec, resize
    from harness.dataset.synth import render_image

    spec = InputSpec(height=INPUT_PX, width=INPUT_PX)
    images = [resize(render_image("calib", i).pixels, spec.height, spec.width)[None] for i in range(8)]
    images.append(np.zeros((1, INPUT_PX, INPUT_PX, 3), np.float32))
    images.append(np.full((1, INPUT_PX, INPUT_PX, 3), 255.0, np.float32))
    return [image.astype(np.float32) for image in images]


def _classifier(tf) -> bytes:
    """A tiny image classifier (global average, softmax): one [1, 3] output."""

    @tf.function(input_signature=[tf.TensorSpec([1, INPUT_PX, INPUT_PX, 3], tf.float32, name="images")])
    def classify(images):
        return {"probabilities": tf.nn.softmax(tf.reduce_mean(images, axis=[1, 2]))}

    return tf.lite.TFLiteConverter.from_concrete_functions([classify.get_concrete_function()]).convert()


def build(folder: Path) -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf
    import tf_keras

    model = tf_keras.models.load_model(DEMO / "detector.h5", compile=False)
    anchors = np.load(DEMO / "anchors.npy").astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    od_api = _module(tf, model, anchors, input_name="input", raw_pixels=False)
    (folder / "od_api.tflite").write_bytes(_convert(tf, od_api, folder, int8_uint8_input=False))
    lite = _module(tf, model, anchors, input_name="images", raw_pixels=True)
    (folder / "efficientdet_lite.tflite").write_bytes(_convert(tf, lite, folder, int8_uint8_input=True))
    # Model Maker's metadata writer packs the label file into the model as a
    # zip after the flatbuffer (an associated file, one name a line).
    with zipfile.ZipFile(folder / "efficientdet_lite.tflite", "a") as archive:
        archive.writestr("labelmap.txt", "rectangle\nellipse\ntriangle\n")
    (folder / "classifier.tflite").write_bytes(_classifier(tf))


if __name__ == "__main__":
    build(Path(sys.argv[1]))
