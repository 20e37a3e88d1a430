"""The YOLO adapters' pure pieces: letterbox geometry and its inverse, the
agent's decoding, class-aware NMS and box-range detection, the layout
matcher and the recipe keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.dataset.letterbox import PAD_VALUE, letterbox_geometry, letterbox_image, to_image_px, to_letterboxed_norm
from harness.dataset.preprocess import InputSpec
from harness.dataset.scoring import coco_scores, to_coco_results
from harness.errors import InputError
from harness.model.adapters import adapter_spec
from harness.model.recipe import load_recipe
from harness.model.layout import ModelLayout, TensorInfo
from harness.model.yolo_layout import match_yolo
from tests.recipes import write_recipe


class StubInterpreter:
    """Stands in for a TFLite interpreter: one input, one output tensor the
    test sets (the readers only ask for details and tensors)."""

    def __init__(self, output: np.ndarray, input_shape=(1, 128, 128, 3), quantization=(0.0, 0)) -> None:
        self.output = output
        self.input_shape = input_shape
        self.quantization = quantization

    def get_input_details(self):
        return [{"index": 0, "name": "images", "shape": np.array(self.input_shape), "dtype": np.float32}]

    def get_output_details(self):
        return [{"index": 1, "name": "Identity", "shape": np.array(self.output.shape), "dtype": self.output.dtype,
                 "quantization": self.quantization}]

    def get_tensor(self, index: int) -> np.ndarray:
        assert index == 1
        return self.output


# -- letterbox ------------------------------------------------------------


def test_letterbox_geometry_of_the_synthetic_images():
    g = letterbox_geometry(192, 256, 128, 128)
    assert (g.scale, g.content_h_px, g.content_w_px, g.top_px, g.left_px) == (0.5, 96, 128, 16, 0)


def test_odd_padding_puts_the_extra_pixel_bottom_right_as_ultralytics_does():
    # 7x10 into 16x16: scale 1.6, content 11 rows, 5 rows of padding: 2 on top, 3 below.
    g = letterbox_geometry(7, 10, 16, 16)
    assert (g.content_h_px, g.content_w_px, g.top_px, g.left_px) == (11, 16, 2, 0)
    tall = letterbox_geometry(10, 7, 16, 16)
    assert (tall.content_h_px, tall.content_w_px, tall.top_px, tall.left_px) == (16, 11, 0, 2)


def test_letterboxed_image_pads_with_grey_114_and_keeps_the_content():
    pixels = np.full((192, 256, 3), 10, dtype=np.uint8)
    out = letterbox_image(pixels, 128, 128)
    assert out.shape == (128, 128, 3) and out.dtype == np.float32
    assert np.all(out[:16] == PAD_VALUE) and np.all(out[112:] == PAD_VALUE)
    assert np.all(out[16:112] == 10.0)


@pytest.mark.parametrize("image_hw", [(192, 256), (256, 192), (7, 10), (480, 640)])
def test_a_box_survives_the_round_trip_through_the_letterbox(image_hw):
    h, w = image_hw
    g = letterbox_geometry(h, w, 128, 96)
    box = (0.1 * h, 0.2 * w, 0.7 * h, 0.9 * w)
    back = to_image_px(to_letterboxed_norm(box, g), g, h, w)
    assert back == pytest.approx(box, abs=1e-9)


def test_boxes_in_the_padding_are_clipped_to_the_image():
    g = letterbox_geometry(192, 256, 128, 128)
    assert to_image_px((0.0, -0.1, 1.0, 1.2), g, 192, 256) == (0.0, 0.0, 192.0, 256.0)


def test_coco_results_undo_the_letterbox(two_box_dataset):
    # two_box_dataset: one 200x100 image, a cat at xywh (20, 10, 40, 30).
    spec = InputSpec(64, 64, resize="letterbox")
    g = letterbox_geometry(100, 200, 64, 64)
    found = [{"boxes": [to_letterboxed_norm((10, 20, 40, 60), g)], "classes": [0], "scores": [0.9]}]
    results = to_coco_results(two_box_dataset, found, (3, 5), spec)
    assert results[0]["bbox"] == pytest.approx([20.0, 10.0, 40.0, 30.0])
    scores = coco_scores(two_box_dataset.annotations_json, results, [7])
    assert scores.map == pytest.approx(0.5)  # the cat found, the dog missed


# -- the agent's readers -----------------------------------------------------


def _v8_head(boxes_xywh, scores) -> np.ndarray:
    """[1, 4+nc, N] from per-anchor xywh (normalised) and class scores."""
    return np.concatenate([np.asarray(boxes_xywh, np.float32), np.asarray(scores, np.float32)], 1).T[None]


def test_v8_decode_threshold_and_class_aware_nms(agent):
    head = _v8_head(
        [(0.5, 0.5, 0.2, 0.2), (0.51, 0.5, 0.2, 0.2), (0.5, 0.5, 0.2, 0.2), (0.1, 0.1, 0.1, 0.1)],
        [(0.9, 0.0), (0.8, 0.0), (0.0, 0.7), (0.0005, 0.0)],
    )
    reader = agent.YoloReader(StubInterpreter(head), {"input_size": [128, 128]}, np)
    found = reader.read(StubInterpreter(head))
    # Anchor 1 overlaps anchor 0 (same class): suppressed; anchor 2 is the
    # same box but another class: kept; anchor 3 is under the 0.001 threshold.
    assert found["classes"] == [0, 1]
    assert found["scores"] == pytest.approx([0.9, 0.7])
    assert found["boxes"][0] == pytest.approx([0.4, 0.4, 0.6, 0.6])


def test_v5_scores_are_objectness_times_class_probability(agent):
    rows = np.array([[[0.5, 0.5, 0.2, 0.2, 0.5, 0.2, 0.8]]], np.float32)  # [1, N, 5+nc]
    found = agent.YoloReader(StubInterpreter(rows), {"layout": "v5"}, np).read(StubInterpreter(rows))
    assert found["classes"] == [1, 0] and found["scores"] == pytest.approx([0.4, 0.1])


def test_pixel_boxes_are_found_by_their_range_and_normalised(agent):
    head = _v8_head([(64, 32, 32, 16)], [(0.9,)])
    interp = StubInterpreter(head, input_shape=(1, 128, 256, 3))
    found = agent.YoloReader(interp, {}, np).read(interp)
    assert found["boxes"][0] == pytest.approx([24 / 128, 48 / 256, 40 / 128, 80 / 256])
    normalised = agent.YoloReader(interp, {"boxes": "normalised"}, np).read(interp)
    assert normalised["boxes"][0] == pytest.approx([24, 48, 40, 80])  # as told, not guessed


def test_a_normalised_head_stays_normalised_when_a_low_score_box_reaches_past_the_image(agent):
    # Two good boxes in [0, 1] and one faint box whose right edge is at 1.6:
    # the largest coordinate would call the head pixels and shrink every box.
    head = _v8_head([(0.3, 0.3, 0.2, 0.2), (0.7, 0.7, 0.2, 0.2), (0.9, 0.5, 1.4, 0.2)], [(0.9,), (0.8,), (0.01,)])
    interp = StubInterpreter(head)
    found = agent.YoloReader(interp, {}, np).read(interp)
    assert found["boxes"][0] == pytest.approx([0.2, 0.2, 0.4, 0.4])
    assert found["boxes"][1] == pytest.approx([0.6, 0.6, 0.8, 0.8])


def test_nchw_input_size_is_read_from_the_channel_axis(agent):
    assert agent.input_size(StubInterpreter(np.zeros((1, 6, 8)), input_shape=(1, 3, 96, 160)), {}) == (96.0, 160.0)


def test_int8_heads_are_dequantised_with_their_scale_and_zero_point(agent):
    real = _v8_head([(0.5, 0.5, 0.25, 0.25)], [(0.75,)])
    scale, zero_point = 1 / 256, -128
    quantised = np.round(real / scale + zero_point).astype(np.int8)
    interp = StubInterpreter(quantised, quantization=(scale, zero_point))
    found = agent.YoloReader(interp, {}, np).read(interp)
    assert found["scores"] == pytest.approx([0.75]) and found["boxes"][0] == pytest.approx([0.375, 0.375, 0.625, 0.625])


def test_end2end_rows_are_thresholded_not_suppressed_again(agent):
    rows = np.array([[[10, 20, 50, 60, 0.9, 2], [12, 20, 50, 60, 0.8, 2], [0, 0, 0, 0, 0.0, 0]]], np.float32)
    interp = StubInterpreter(rows, input_shape=(1, 100, 200, 3))
    found = agent.YoloEnd2EndReader(interp, {}, np).read(interp)
    assert found["classes"] == [2, 2] and found["scores"] == pytest.approx([0.9, 0.8])
    assert found["boxes"][0] == pytest.approx([0.2, 0.05, 0.6, 0.25])


def test_a_model_with_no_yolo_head_is_named_with_its_outputs(agent):
    with pytest.raises(agent.AgentFailure, match=r"expected one \[1, 4\+nc, N\] output, found Identity \[1, 10\]"):
        agent.YoloReader(StubInterpreter(np.zeros((1, 10), np.float32)), {}, np)


def test_class_aware_nms_keeps_overlapping_boxes_of_other_classes(agent):
    boxes = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0.9, 1]], np.float32)
    keep = agent.class_aware_nms(boxes, np.array([0.9, 0.8, 0.7]), np.array([0, 1, 0]), 0.7, 10, np)
    assert keep == [0, 1]


# -- the layout matcher ---------------------------------------------------


def _layout(input_shape, output_shape) -> ModelLayout:
    return ModelLayout(
        path=Path("yolo.tflite"),
        kind="tflite",
        inputs=(TensorInfo("images", tuple(input_shape), "float32"),),
        outputs=(TensorInfo("Identity", tuple(output_shape), "float32"),),
    )


@pytest.mark.parametrize(
    ("input_shape", "output_shape", "adapter", "layout"),
    [
        ((1, 640, 640, 3), (1, 84, 8400), "yolo", "v8"),  # yolov8n, 80 classes
        ((1, 3, 640, 640), (1, 84, 8400), "yolo", "v8"),  # litert-torch: NCHW
        ((1, 128, 128, 3), (1, 6, 336), "yolo", "v8"),  # 2 classes: 6 rows, still v8
        ((1, 640, 640, 3), (1, 25200, 85), "yolo", "v5"),
        ((1, 128, 128, 3), (1, 1008, 6), "yolo", "v5"),  # 1 class: 6 columns, anchors tell
        ((1, 640, 640, 3), (1, 300, 6), "yolo-end2end", None),
    ],
)
def test_match_yolo_names_the_layout(input_shape, output_shape, adapter, layout):
    choice = match_yolo(_layout(input_shape, output_shape))
    assert choice is not None and choice.name == adapter
    assert choice.options.get("layout") == layout
    assert choice.options["input_size"] == [s for s in input_shape if s not in (1, 3)]


def test_match_yolo_leaves_other_models_alone():
    assert match_yolo(_layout((1, 320, 320, 3), (1, 2034, 4))) is None
    assert match_yolo(_layout((1, 640, 640, 3), (1, 84, 8000))) is None


# -- recipe keys --------------------------------------------------------------


def test_a_yolo_recipe_gets_ultralytics_input_and_val_defaults(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, adapter="yolo", postprocess={}))
    assert recipe.input.resize == "letterbox"
    assert recipe.input.mean == (0.0, 0.0, 0.0) and recipe.input.std == (255.0, 255.0, 255.0)
    assert recipe.postprocess == {"score_threshold": 0.001, "iou_threshold": 0.7, "max_detections": 300, "boxes": "auto", "layout": "v8"}
    assert adapter_spec(recipe).request()["adapter_options"]["input_size"] == [8, 8]


def test_an_end2end_recipe_refuses_an_nms_threshold(tmp_path):
    with pytest.raises(InputError, match="iou_threshold"):
        load_recipe(write_recipe(tmp_path, adapter="yolo-end2end", postprocess={"iou_threshold": 0.5}))


def test_a_yolo_recipe_refuses_an_unknown_box_unit(tmp_path):
    with pytest.raises(InputError, match="boxes"):
        load_recipe(write_recipe(tmp_path, adapter="yolo", postprocess={"boxes": "percent"}))
