"""Adapter choice from a model's layout: each matcher, the order they are
tried in, and the exit-2 text when none fits. Layouts are written out as
the exporters produce them (see tests/integration/ssd_exports.py)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
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


# --- bare .tflite runs: one place decides input preparation and postprocess keys ---

def _yolo(path: Path, head: TensorInfo, image: TensorInfo | None = None) -> ModelLayout:
    """An Ultralytics onnx2tf export: NHWC float [0, 1] input, one head."""
    image = image or TensorInfo("serving_default_images:0", (1, 128, 128, 3), "float32")
    return ModelLayout(path=path, kind="tflite", inputs=(image,), outputs=(head,))


V5_HEAD = TensorInfo("Identity", (1, 3 * 336, 8), "float32")  # 336 anchor points of 128x128, 3 classes
INT8_V8_HEAD = TensorInfo("Identity", (1, 7, 336), "int8", 1 / 255, -128)  # boxes / input size, one scale


def _bare(monkeypatch, tmp_path, layout: ModelLayout):
    from harness.model import layout as layout_module
    from harness.model.bare import plan_recipe

    layout.path.write_bytes(b"x")
    monkeypatch.setattr(layout_module, "read_tflite_layout", lambda path: layout)
    coco = tmp_path / "coco"
    (coco / "annotations").mkdir(parents=True)
    (coco / "val").mkdir()
    (coco / "annotations" / "instances_val.json").write_text("{}")
    return plan_recipe(layout.path, coco)


def test_a_bare_yolo_tflite_is_fed_as_ultralytics_does_and_gets_its_heads_keys(monkeypatch, tmp_path):
    recipe = _bare(monkeypatch, tmp_path, _yolo(tmp_path / "v5.tflite", V5_HEAD))
    assert recipe.adapter == "yolo" and recipe.variants == ("fp32",) and recipe.calibration is None
    assert (recipe.input.mean, recipe.input.std, recipe.input.resize) == ((0.0,) * 3, (255.0,) * 3, "letterbox")
    assert recipe.postprocess["layout"] == "v5" and recipe.postprocess["boxes"] == "auto"  # a float head: told per image
    assert recipe.postprocess["iou_threshold"] == 0.7  # Ultralytics' val defaults for the rest


def test_an_int8_yolo_gets_pixels_less_128_and_normalised_boxes(monkeypatch, tmp_path):
    image = TensorInfo("serving_default_images:0", (1, 128, 128, 3), "int8", 1 / 255, -128)
    recipe = _bare(monkeypatch, tmp_path, _yolo(tmp_path / "v8-int8.tflite", INT8_V8_HEAD, image))
    # (pixel - 0) / 255 quantised with scale 1/255, zero point -128: pixel - 128.
    assert (recipe.input.mean, recipe.input.std, recipe.input.resize) == ((0.0,) * 3, (255.0,) * 3, "letterbox")
    assert recipe.postprocess["layout"] == "v8" and recipe.postprocess["boxes"] == "normalised"
    pixels = TensorInfo("Identity", (1, 7, 336), "int8", 0.6, -128)  # largest value 153: pixel boxes of a 128-px input
    assert fit.choose_adapter(_yolo(tmp_path / "p.tflite", pixels)).postprocess["boxes"] == "pixels"


@pytest.mark.parametrize("head", [V5_HEAD, INT8_V8_HEAD, TensorInfo("Identity", (1, 300, 6), "float32")], ids=["v5", "v8-int8", "end2end"])
def test_the_written_recipe_loads_to_what_a_bare_run_measures(monkeypatch, tmp_path, head):
    layout = _yolo(tmp_path / "m.tflite", head)
    bare = _bare(monkeypatch, tmp_path, layout)
    written = tmp_path / "m.yaml"
    written.write_text(recipe_text(layout, choose_adapter(layout), written))
    recipe = load_recipe(written)
    assert (recipe.adapter, recipe.input, recipe.postprocess) == (bare.adapter, bare.input, bare.postprocess)
    assert len(recipe.labels) == {"yolo": 3, "yolo-end2end": 1}[recipe.adapter]  # the head's classes, not its row width


def test_an_ssd_tflite_keeps_the_tf_od_api_range(monkeypatch, tmp_path):
    recipe = _bare(monkeypatch, tmp_path, _tf2_ssd(path=tmp_path / "od.tflite"))
    assert (recipe.input.mean, recipe.input.resize) == ((127.5,) * 3, "bilinear") and recipe.postprocess == {}


def test_uint8_inputs_are_fed_raw_pixels_by_one_function():
    from harness.dataset.preprocess import InputSpec, normalise, quantise
    from harness.model.feed import model_input, raw_pixels

    uint8 = TensorInfo("images", (1, 8, 8, 3), "uint8", 0.0078125, 127)
    assert model_input(uint8, "ssd-postprocess", source="m.tflite") == raw_pixels(InputSpec(8, 8), InputQuant("uint8"))[0]
    int8 = InputQuant("int8", 0.0078125, 0)  # real [-1, 1]
    spec, quant = raw_pixels(InputSpec(8, 8), int8)
    pixels = np.array([[[0.0, 128.0, 255.0]]])  # one pixel each of 0, 128, 255 in its three channels
    assert quantise(normalise(pixels, spec), quant).ravel().tolist() == [-128, 0, 127]


@pytest.mark.parametrize(
    ("shape", "signature", "needles"),
    [
        ((1, 1, 1, 3), (1, -1, -1, 3), ("m.tflite", "no fixed size", "[1, -1, -1, 3]", "fixed input size")),
        ((1, 3, 640, 640), (), ("m.tflite", "NCHW", "NHWC")),
    ],
    ids=["dynamic-size", "nchw"],
)
def test_inputs_the_harness_cannot_feed_are_refused_with_the_fix(monkeypatch, tmp_path, shape, signature, needles):
    image = TensorInfo("images", shape, "float32", signature_shape=signature)
    layout = _yolo(tmp_path / "m.tflite", TensorInfo("Identity", (1, 300, 6), "float32"), image)
    with pytest.raises(InputError) as caught:
        _bare(monkeypatch, tmp_path, layout)
    text = f"{caught.value} {caught.value.hint}"
    assert caught.value.exit_code == EXIT_INPUT and all(n in text for n in needles), text


def test_a_dynamic_size_is_refused_for_a_benchmark_only_run_too(monkeypatch, tmp_path):
    from harness.model import layout as layout_module
    from harness.model.bare import plan_recipe

    image = TensorInfo("images", (1, 1, 1, 3), "float32", signature_shape=(1, -1, -1, 3))
    layout = _yolo(tmp_path / "m.tflite", TensorInfo("Identity", (1, 300, 6), "float32"), image)
    layout.path.write_bytes(b"x")
    monkeypatch.setattr(layout_module, "read_tflite_layout", lambda path: layout)
    with pytest.raises(InputError, match="no fixed size"):
        plan_recipe(layout.path)
    batch_only = TensorInfo("images", (1, 8, 8, 3), "float32", signature_shape=(-1, 8, 8, 3))
    monkeypatch.setattr(layout_module, "read_tflite_layout", lambda path: _yolo(layout.path, V5_HEAD, batch_only))
    assert plan_recipe(layout.path).adapter == "none"  # a dynamic batch allocates at 1: fine


# --- Keras/SavedModel postprocess sections: the missing key is named ---

def _keras_recipe(tmp_path, **fields) -> Path:
    (tmp_path / "m.h5").write_bytes(b"x")
    (tmp_path / "anchors.npy").write_bytes(b"x")
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump({"name": "m", "source": "m.h5", "input": {"height": 8, "width": 8}, "labels": ["a"], **fields}))
    return path


@pytest.mark.parametrize(
    ("fields", "needles"),
    [
        ({"adapter": "ssd-postprocess"}, ("postprocess.anchors", "missing anchors", "anchors: anchors.npy")),
        ({"adapter": "boxes-scores", "postprocess": {"anchors": "anchors.npy"}},
         ("postprocess.scales", "anchors is given", "scales: {y: 10.0", "drop anchors")),
    ],
    ids=["ssd-no-section", "boxes-scores-anchors-no-scales"],
)
def test_a_keras_postprocess_section_names_the_missing_key(tmp_path, fields, needles):
    with pytest.raises(InputError) as caught:
        load_recipe(_keras_recipe(tmp_path, **fields))
    text = f"{caught.value} {caught.value.hint}"
    assert "model.yaml" in str(caught.value.source) and all(n in text for n in needles), text


def test_the_op_the_harness_builds_names_every_key_it_lacks_before_export(tmp_path):
    """The converter asks this before building the op (a KeyError from
    inside the export was the message before)."""
    from harness.model.recipe import require_export_keys

    recipe = load_recipe(_keras_recipe(tmp_path, postprocess={"anchors": "anchors.npy", "max_detections": 10}))
    with pytest.raises(InputError) as caught:
        require_export_keys(recipe.postprocess, recipe.path)
    text = f"{caught.value} {caught.value.hint}"
    assert "model.yaml, postprocess.scales" in text and "missing scales, max_classes_per_detection" in text
    assert "scales: {y: 10.0, x: 10.0, h: 5.0, w: 5.0}" in text and "max_detections: 100" not in text
    demo = load_recipe(Path(__file__).resolve().parents[2] / "models" / "demo-detector" / "model.yaml")
    require_export_keys(demo.postprocess, demo.path)  # a complete section passes


# --- harness inspect on what is not a model ---

@pytest.mark.parametrize(
    ("name", "content", "needles"),
    [
        ("nope.tflite", None, ("nope.tflite", "model file not found", "check the path")),
        ("text.tflite", "hello\n", ("text.tflite", "cannot read the model", "check that it is a .tflite")),
        ("model.onnx", "x", ("model.onnx", "not a model harness inspect can read", "give a .tflite")),
    ],
    ids=["missing", "not-a-flatbuffer", "other-format"],
)
def test_inspect_refuses_what_is_not_a_model_with_exit_2(run_cli, tmp_path, name, content, needles):
    from tests.cli_checks import assert_clean_input_error

    if content is not None:
        (tmp_path / name).write_text(content)
    assert_clean_input_error(run_cli("inspect", str(tmp_path / name), timeout=120), *needles)


def test_the_layout_keeps_the_files_shape_signature():
    from harness.model.layout import _tensor

    detail = {"name": "images", "index": 0, "shape": np.array([1, 1, 1, 3]), "shape_signature": np.array([1, -1, -1, 3]),
              "dtype": np.float32, "quantization": (0.0, 0)}
    tensor = _tensor(detail)
    assert tensor.shape == (1, 1, 1, 3) and tensor.signature_shape == (1, -1, -1, 3)
