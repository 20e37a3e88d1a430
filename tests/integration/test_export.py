"""The export graph of the committed demo detector converts to every PTQ variant and runs.

Each variant is converted once (module fixture) from models/demo-detector and
run in ai-edge-litert on a synthetic ``val`` image that has objects. The
converter options are the minimum each variant needs; facts they pin down:

* the graph always holds the ``TFLite_Detection_PostProcess`` custom op, fed
  with float tensors (the integer variants dequantize in front of it);
* the outputs are float32 in every variant (``inference_output_type`` left at
  its default), found through the ``serving_default`` signature by name;
* int16x8 needs ``TFLITE_BUILTINS`` next to the 16x8 op set, otherwise the
  converter fails with "Quantization to 16x8-bit not yet supported for op: 'CUSTOM'".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
tf = pytest.importorskip("tensorflow")
tf_keras = pytest.importorskip("tf_keras")
litert = pytest.importorskip("ai_edge_litert.interpreter")

from harness.convert.export import (  # noqa: E402
    OUTPUT_KEYS,
    SIGNATURE_KEY,
    build_export_function,
    representative_dataset,
    variables_holder,
)
from harness.dataset import synth  # noqa: E402

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "demo-detector"
VARIANTS = ("fp32", "fp16", "dynamic-int8", "int8", "uint8", "int16x8")
N_CALIB_IMAGES = 16  # enough for a sanity run; the real calib split is 128


def _model_input(pixels_u8: np.ndarray, recipe: dict[str, Any]) -> np.ndarray:
    spec = recipe["input"]
    resized = tf.image.resize(pixels_u8[None].astype(np.float32), (spec["height"], spec["width"]), "bilinear")
    return ((resized.numpy() - np.asarray(spec["mean"])) / np.asarray(spec["std"])).astype(np.float32)


@pytest.fixture(scope="module")
def recipe() -> dict[str, Any]:
    return yaml.safe_load((MODEL_DIR / "model.yaml").read_text())


@pytest.fixture(scope="module")
def export(recipe: dict[str, Any]) -> tuple[Any, Any]:
    model = tf_keras.models.load_model(MODEL_DIR / recipe["source"], compile=False)
    anchors = np.load(MODEL_DIR / recipe["postprocess"]["anchors"])
    spec = recipe["input"]
    return model, build_export_function(model, anchors, recipe["postprocess"], (spec["height"], spec["width"]))


@pytest.fixture(scope="module")
def calib_inputs(recipe: dict[str, Any]) -> np.ndarray:
    return np.concatenate(
        [_model_input(synth.render_image("calib", i).pixels, recipe) for i in range(N_CALIB_IMAGES)]
    )


def _configure(converter: Any, variant: str, calib: Callable[[], Any]) -> None:
    ops = tf.lite.OpsSet
    if variant == "fp32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic-int8":
        pass  # DEFAULT without a representative dataset = dynamic-range weights
    elif variant in ("int8", "uint8"):
        converter.representative_dataset = calib
        # Integer-only builtins; the custom op is allowed by allow_custom_ops.
        converter.target_spec.supported_ops = [ops.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8 if variant == "int8" else tf.uint8
    elif variant == "int16x8":
        converter.representative_dataset = calib
        converter.target_spec.supported_ops = [
            ops.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
            ops.TFLITE_BUILTINS,  # the float custom op needs it
        ]
    else:
        raise AssertionError(variant)


@pytest.fixture(scope="module")
def converted(export: tuple[Any, Any], calib_inputs: np.ndarray) -> dict[str, bytes]:
    model, fn = export
    holder = variables_holder(model)  # what the product's converter hands it too
    results: dict[str, bytes] = {}
    for variant in VARIANTS:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], holder)
        converter.allow_custom_ops = True
        _configure(converter, variant, representative_dataset(calib_inputs))
        results[variant] = converter.convert()
    return results


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter_h = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_w = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_h * inter_w
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_runs_and_detects(variant: str, converted: dict[str, bytes], recipe: dict[str, Any]) -> None:
    interpreter = litert.Interpreter(model_content=converted[variant], num_threads=1)
    assert list(interpreter.get_signature_list()) == [SIGNATURE_KEY]
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    assert ops.count("TFLite_Detection_PostProcess") == 1

    runner = interpreter.get_signature_runner(SIGNATURE_KEY)
    input_detail = runner.get_input_details()["images"]
    expected_dtype = {"int8": np.int8, "uint8": np.uint8}.get(variant, np.float32)
    assert input_detail["dtype"] == expected_dtype
    output_details = runner.get_output_details()
    assert sorted(output_details) == sorted(OUTPUT_KEYS)
    assert all(detail["dtype"] == np.float32 for detail in output_details.values())

    rendered = synth.render_image("val", 0)
    assert len(rendered.boxes_xywh_px) >= 1
    x = _model_input(rendered.pixels, recipe)
    if expected_dtype != np.float32:
        scale, zero_point = input_detail["quantization"]
        info = np.iinfo(expected_dtype)
        x = np.clip(np.rint(x / scale + zero_point), info.min, info.max).astype(expected_dtype)
    out = runner(images=x)

    max_detections = recipe["postprocess"]["max_detections"]
    assert out["boxes"].shape == (1, max_detections, 4)
    assert out["classes"].shape == out["scores"].shape == (1, max_detections)
    n = int(out["num_detections"][0])
    assert 1 <= n <= max_detections
    boxes, classes, scores = out["boxes"][0, :n], out["classes"][0, :n], out["scores"][0, :n]
    # Decoded boxes are not clipped by the op; a hair outside [0, 1] is legal.
    assert np.all(boxes >= -0.05) and np.all(boxes <= 1.05)
    assert np.all(boxes[:, 2:] >= boxes[:, :2])
    assert set(np.unique(classes).tolist()) <= {0.0, 1.0, 2.0}
    assert np.all((scores >= recipe["postprocess"]["nms_score_threshold"]) & (scores <= 1.0))
    assert np.all(np.diff(scores) <= 1e-6), "detections come sorted by score"

    # The best detection is a real object of the right class.
    gt = rendered.boxes_xywh_px
    gt_corners = np.stack(
        [
            gt[:, 1] / synth.IMAGE_HEIGHT_PX,
            gt[:, 0] / synth.IMAGE_WIDTH_PX,
            (gt[:, 1] + gt[:, 3]) / synth.IMAGE_HEIGHT_PX,
            (gt[:, 0] + gt[:, 2]) / synth.IMAGE_WIDTH_PX,
        ],
        axis=1,
    )
    ious = [_iou(boxes[0], g) for g in gt_corners]
    best = int(np.argmax(ious))
    assert ious[best] >= 0.5
    assert int(classes[0]) + 1 == int(rendered.category_ids[best])
