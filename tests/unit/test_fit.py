"""Adapter choice from a model's layout: each matcher, the order they are
tried in, and the exit-2 text when none fits. Layouts are written out as
the exporters produce them (see tests/integration/ssd_exports.py)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import yaml

from harness.dataset.preprocess import InputQuant
from harness.errors import EXIT_INPUT, InputError
from harness.model import fit
from harness.model.feed import RAW_PIXELS, eval_feed
from harness.model.fit import AdapterChoice, Matcher, choose_adapter
from harness.model.layout import ModelLayout, TensorInfo, _is_custom, _packed_labels
from harness.model.recipe import load_recipe
from harness.model.recipe_writer import recipe_text

IMAGE = TensorInfo("serving_default_input:0", (1, 160, 160, 3), "float32")
OP = "TFLite_Detection_PostProcess"


def _tf2_ssd(**changes) -> ModelLayout:
    """The TF2 OD API / Model Maker layout: a reversed tuple, listed :1, :3, :0, :2."""
    outputs = (
        TensorInfo("StatefulPartitionedCall:1", (1, 100), "float32"),
        TensorInfo("StatefulPartitionedCall:3", (1, 100, 4), "float32"),
        TensorInfo("StatefulPartitionedCall:0", (1,), "float32"),
        TensorInfo("StatefulPartitionedCall:2", (1, 100), "float32"),
    )
    fields = dict(
        path=Path("od_api.tflite"),
        kind="tflite",
        inputs=(IMAGE,),
        outputs=outputs,
        signatures={"serving_default": {f"output_{i}": f"StatefulPartitionedCall:{i}" for i in range(4)}},
        ops={"CONV_2D": 19, OP: 1},
        custom_ops=(OP,),
        postprocess_outputs=(tuple(f"StatefulPartitionedCall:{i}" for i in (3, 2, 1, 0)),),
        postprocess_options={"num_classes": 3},
    )
    fields.update(changes)
    return ModelLayout(**fields)


def test_ssd_outputs_come_from_the_ops_own_tensors_not_the_listed_order():
    choice = choose_adapter(_tf2_ssd())
    assert choice.name == "ssd-postprocess"
    assert choice.options["outputs"] == {
        "boxes": "StatefulPartitionedCall:3",
        "classes": "StatefulPartitionedCall:2",
        "scores": "StatefulPartitionedCall:1",
        "num_detections": "StatefulPartitionedCall:0",
    }
    assert "outputs of the TFLite_Detection_PostProcess op" in choice.reason


def test_ssd_signature_keys_win_when_they_name_the_outputs():
    keys = {"boxes": "StatefulPartitionedCall:0", "classes": "StatefulPartitionedCall:1",
            "num_detections": "StatefulPartitionedCall:2", "scores": "StatefulPartitionedCall:3"}
    choice = choose_adapter(_tf2_ssd(signatures={"serving_default": keys}))
    assert choice.options["outputs"] == {k: keys[k] for k in ("boxes", "classes", "scores", "num_detections")}
    assert "signature 'serving_default'" in choice.reason


def test_ssd_tf1_tensor_names_are_found_by_name():
    names = ("TFLite_Detection_PostProcess", "TFLite_Detection_PostProcess:1",
             "TFLite_Detection_PostProcess:2", "TFLite_Detection_PostProcess:3")
    outputs = tuple(TensorInfo(n, (1, 10, 4) if i == 0 else (1, 10), "float32") for i, n in enumerate(names))
    layout = _tf2_ssd(outputs=outputs, signatures={}, postprocess_outputs=())
    assert choose_adapter(layout).options["outputs"]["scores"] == "TFLite_Detection_PostProcess:2"


def test_boxes_scores_by_shape_and_by_name():
    by_shape = _tf2_ssd(
        outputs=(TensorInfo("Identity_1", (1, 500, 3), "float32"), TensorInfo("Identity", (1, 500, 4), "float32")),
        signatures={}, ops={"CONV_2D": 3}, custom_ops=(), postprocess_outputs=(),
    )
    choice = choose_adapter(by_shape)
    assert choice.name == "boxes-scores" and "Identity [1, 500, 4]" in choice.reason and "by shape" in choice.reason
    by_key = _tf2_ssd(
        outputs=by_shape.outputs, ops={"CONV_2D": 3}, custom_ops=(), postprocess_outputs=(),
        signatures={"serving_default": {"boxes": "Identity", "scores": "Identity_1"}},
    )
    assert "signature" in choose_adapter(by_key).reason


def test_a_keras_ssd_gets_the_op_the_harness_builds():
    layout = ModelLayout(
        path=Path("detector.h5"), kind="keras", inputs=(IMAGE,),
        outputs=(TensorInfo("box_encodings", (-1, 500, 4), "float32"), TensorInfo("class_logits", (-1, 500, 3), "float32")),
    )
    choice = choose_adapter(layout)
    assert choice.name == "ssd-postprocess" and "postprocess.anchors" in choice.reason


def test_no_fit_is_exit_2_listing_the_outputs_and_each_adapters_expectation():
    layout = _tf2_ssd(outputs=(TensorInfo("probabilities", (1, 3), "float32"),), signatures={}, ops={"MEAN": 1},
                      custom_ops=(), postprocess_outputs=())
    with pytest.raises(InputError) as err:
        choose_adapter(layout, source="m.yaml", place="adapter")
    text = err.value.render()
    assert err.value.exit_code == EXIT_INPUT
    assert text.startswith("m.yaml, adapter: no output adapter fits this model")
    assert "    probabilities [1, 3] float32" in text
    for matcher in fit.MATCHERS:
        assert f"    {matcher.adapters}: {matcher.expects}" in text
    assert "adapter: none" in text  # the fix


def test_the_op_present_but_its_outputs_hidden_is_no_fit():
    """A QUANTIZE after the op (int8 outputs asked for): its tensors are not the model's outputs."""
    outputs = tuple(TensorInfo(f"Identity_{i}", (1, 100), "int8", 0.1, 0) for i in range(4))
    layout = _tf2_ssd(outputs=outputs, signatures={})
    with pytest.raises(InputError, match="no output adapter fits"):
        choose_adapter(layout)


def test_a_new_matcher_plugs_in_with_one_line(monkeypatch):
    def match_yolo(layout: ModelLayout) -> AdapterChoice | None:
        out = layout.outputs[0]
        return AdapterChoice("yolo", {}, "one [1, 4+nc, N] output") if len(out.shape) == 3 and out.shape[1] == 7 else None

    yolo = _tf2_ssd(outputs=(TensorInfo("Identity", (1, 7, 8400), "float32"),), signatures={}, ops={"CONV_2D": 1},
                    custom_ops=(), postprocess_outputs=())
    monkeypatch.setattr(fit, "MATCHERS", [*fit.MATCHERS, Matcher("yolo, yolo-end2end", "one output [1, 4+nc, N]", match_yolo)])
    assert choose_adapter(yolo).name == "yolo"
    assert choose_adapter(_tf2_ssd()).name == "ssd-postprocess"  # the op still wins


def test_custom_ops_are_told_from_builtins_by_their_names():
    assert _is_custom(OP) and _is_custom("FlexRFFT") and not _is_custom("CONV_2D") and not _is_custom("DEPTHWISE_CONV_2D")


def test_labels_packed_by_the_metadata_writer_are_read(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x1c\0\0\0TFL3" + bytes(64))
    assert _packed_labels(model) == ()
    with zipfile.ZipFile(model, "a") as archive:
        archive.writestr("labelmap.txt", "person\nbicycle\n\n")
    assert _packed_labels(model) == ("person", "bicycle")


def test_a_tflite_with_the_op_needs_no_postprocess_keys(tmp_path):
    (tmp_path / "m.tflite").write_bytes(b"x")
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump({"name": "m", "source": "m.tflite", "input": {"height": 8, "width": 8},
                                    "labels": ["a"], "adapter": "ssd-postprocess"}))
    recipe = load_recipe(path)
    assert recipe.adapter == "ssd-postprocess" and recipe.postprocess == {}


def test_a_keras_source_still_needs_its_anchors(tmp_path):
    (tmp_path / "m.h5").write_bytes(b"x")
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump({"name": "m", "source": "m.h5", "input": {"height": 8, "width": 8}, "labels": ["a"]}))
    with pytest.raises(InputError, match="postprocess"):
        load_recipe(path)


def test_the_written_recipe_loads_and_feeds_uint8_models_raw_pixels(tmp_path):
    model = tmp_path / "models" / "lite.tflite"
    model.parent.mkdir()
    model.write_bytes(b"x")
    uint8 = TensorInfo("serving_default_images:0", (1, 160, 160, 3), "uint8", 0.0078125, 127)
    layout = _tf2_ssd(path=model, inputs=(uint8,), labels=("rectangle", "ellipse", "triangle"))
    recipe_path = tmp_path / "recipes" / "lite.yaml"
    recipe_path.parent.mkdir()
    recipe_path.write_text(recipe_text(layout, choose_adapter(layout), recipe_path))
    assert "source: ../models/lite.tflite" in recipe_path.read_text()
    recipe = load_recipe(recipe_path)
    assert recipe.source.resolve() == model.resolve()
    assert recipe.labels == ("rectangle", "ellipse", "triangle") and recipe.input.height == 160
    spec, quant = eval_feed(recipe, InputQuant("uint8", 0.0078125, 127))
    assert quant == RAW_PIXELS and spec.mean == (0.0,) * 3 and spec.std == (1.0,) * 3
    float_spec, float_quant = eval_feed(recipe, InputQuant("float32"))
    assert float_spec == recipe.input and float_quant == InputQuant("float32")


def test_a_keras_recipe_names_the_classes_and_the_op_settings(tmp_path):
    (tmp_path / "detector.h5").write_bytes(b"x")
    np_anchors = tmp_path / "anchors.npy"
    np_anchors.write_bytes(b"x")
    layout = ModelLayout(
        path=tmp_path / "detector.h5", kind="keras", inputs=(IMAGE,),
        outputs=(TensorInfo("box_encodings", (-1, 500, 4), "float32"), TensorInfo("class_logits", (-1, 500, 5), "float32")),
    )
    path = tmp_path / "model.yaml"
    path.write_text(recipe_text(layout, choose_adapter(layout), path))
    recipe = load_recipe(path)
    assert recipe.labels == tuple(f"class_{i}" for i in range(5))
    assert recipe.postprocess["scores"] == "logits" and recipe.postprocess["max_detections"] == 100
    assert recipe.variants == ("fp32", "int8")
