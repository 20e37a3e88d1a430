"""Bad input: exit code 2, a message naming the thing and the fix, no traceback."""

import json
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from harness.dataset.coco import load_coco
from harness.errors import InputError
from harness.model.recipe import load_recipe
from harness.model.variants import parse_variant_names
from tests.recipes import write_recipe


def test_unknown_variant_suggests_the_close_name():
    with pytest.raises(InputError) as err:
        parse_variant_names("fp32,int9")
    assert "unknown variant 'int9'" in err.value.render()
    assert "did you mean 'int8'" in err.value.render()


def test_recipe_unknown_key_is_named_with_a_suggestion(tmp_path):
    path = write_recipe(tmp_path, sorce="x.h5")
    with pytest.raises(InputError) as err:
        load_recipe(path)
    text = err.value.render()
    assert str(path) in text and "sorce" in text and "did you mean 'source'" in text


def test_recipe_missing_model_file_names_the_field(tmp_path):
    path = write_recipe(tmp_path, source="missing.h5")
    with pytest.raises(InputError) as err:
        load_recipe(path)
    assert "source" in err.value.render() and "missing.h5" in err.value.render()


def test_recipe_wrong_type_names_the_nested_place(tmp_path):
    path = write_recipe(tmp_path, input={"height": "tall", "width": 8})
    with pytest.raises(InputError) as err:
        load_recipe(path)
    assert "input.height" in err.value.render()


def test_recipe_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text("name: x\ninput: [unclosed\n")
    with pytest.raises(InputError) as err:
        load_recipe(path)
    assert "line" in err.value.render()


@pytest.mark.parametrize(
    "document, place",
    [
        ("[1, 2]", "top level"),
        (json.dumps({"images": [], "annotations": []}), "categories"),
        (json.dumps({"images": [{"id": 1}], "annotations": [], "categories": [{"id": 1, "name": "a"}]}), "images[0].file_name"),
        (
            json.dumps(
                {
                    "images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4}],
                    "annotations": [{"image_id": 1, "category_id": 2, "bbox": [0, 0, 1, 1]}],
                    "categories": [{"id": 1, "name": "a"}],
                }
            ),
            "annotations[0].category_id",
        ),
        ("{not json", "not JSON"),
    ],
)
def test_non_coco_json_names_file_and_place(tmp_path, document, place):
    path = tmp_path / "instances_val.json"
    path.write_text(document)
    with pytest.raises(InputError) as err:
        load_coco(path, tmp_path)
    assert str(path) in err.value.render()
    assert place in err.value.render()


def test_empty_calibration_folder_is_named_with_its_field(tmp_path):
    (tmp_path / "calib").mkdir()
    (tmp_path / "calib.json").write_text("{}")
    path = write_recipe(tmp_path, dataset={"calibration": {"annotations": "calib.json", "images": "calib"}})
    with pytest.raises(InputError) as err:
        load_recipe(path)
    text = err.value.render()
    assert str(path) in text and "dataset.calibration.images" in text and "empty" in text and "fix:" in text


def test_qat_without_a_training_section_is_refused(tmp_path):
    path = write_recipe(tmp_path, variants=["fp32", "qat-int8"])
    with pytest.raises(InputError) as err:
        load_recipe(path)
    assert "training" in err.value.render() and "qat-int8" in err.value.render()


def test_default_variants_leave_out_qat_without_training(tmp_path):
    path = write_recipe(tmp_path)
    data = yaml.safe_load(path.read_text())
    del data["variants"]
    path.write_text(yaml.safe_dump(data))
    variants = load_recipe(path).variants
    assert "qat-int8" not in variants and "selective-int8" in variants


def test_unknown_variant_option_suggests_the_close_key(tmp_path):
    path = write_recipe(tmp_path, variant_options={"selective-int8": {"max_layer": 3}})
    with pytest.raises(InputError) as err:
        load_recipe(path)
    assert "variant_options.selective-int8.max_layer" in err.value.render() and "max_layers" in err.value.render()


def test_training_options_are_merged_with_qat_overrides(tmp_path):
    path = write_recipe(
        tmp_path,
        dataset={"generator": "synthetic", "seed": 3, "splits": {"calib": 4, "val": 4}},
        training={"dataset": {"split": "train", "size": 8}, "epochs": 3, "learning_rate": 0.001},
        variant_options={"qat-int8": {"epochs": 1, "steps": 5}},
        variants=["qat-int8"],
    )
    recipe = load_recipe(path)
    assert recipe.qat.epochs == 1 and recipe.qat.steps == 5 and recipe.qat.learning_rate == 0.001
    assert recipe.qat.dataset.synthetic_size == 8



def test_training_steps_alone_are_the_step_count(tmp_path):
    """`steps: 150` on a 256-image split is 150 steps (it used to cap the
    default single epoch: 16 steps), `epochs` alone passes, both the fewer."""
    def config(**training):
        path = write_recipe(
            tmp_path,
            dataset={"generator": "synthetic", "seed": 3, "splits": {"calib": 4, "val": 4}},
            training={"dataset": {"split": "train", "size": 8}, **training},
            variants=["qat-int8"],
        )
        return load_recipe(path).qat

    assert config(steps=150).total_steps(16) == 150
    assert config(epochs=2).total_steps(16) == 32
    assert config(epochs=2, steps=150).total_steps(16) == 32
    assert config(epochs=20, steps=150).total_steps(16) == 150
    assert config().total_steps(16) == 16

def _yolo_training_recipe(tmp_path, **training):
    return write_recipe(
        tmp_path,
        adapter="yolo",
        postprocess={"layout": "v8", "boxes": "pixels"},
        dataset={"generator": "synthetic", "seed": 3, "splits": {"calib": 4, "val": 4}},
        training={"dataset": {"split": "train", "size": 8}, **training},
        variants=["qat-int8"],
    )


def test_a_distill_loss_needs_no_anchors_and_the_ssd_loss_names_it_as_the_fix(tmp_path):
    recipe = load_recipe(_yolo_training_recipe(tmp_path, loss="distill", steps=20, learning_rate=1e-4))
    assert (recipe.qat.loss, recipe.qat.steps, recipe.qat.learning_rate) == ("distill", 20, 1e-4)
    with pytest.raises(InputError) as err:
        load_recipe(_yolo_training_recipe(tmp_path))  # ssd-focal, the default, matches objects to anchors
    assert err.value.place == "postprocess.anchors" and "loss: distill" in err.value.render()


@pytest.mark.parametrize("where, key, value", [
    ("training", "steps", 0), ("training", "learning_rate", -1.0), ("training", "loss", "yolo"),
    ("variant_options.qat-int8", "steps", "many"), ("variant_options.qat-int8", "learning_rate", "fast"),
])
def test_bad_qat_steps_learning_rate_and_loss_name_file_key_and_fix(tmp_path, where, key, value):
    if where == "training":
        path = _yolo_training_recipe(tmp_path, **{"loss": "distill", key: value})
    else:
        path = _yolo_training_recipe(tmp_path, loss="distill")
        data = yaml.safe_load(path.read_text())
        data["variant_options"] = {"qat-int8": {key: value}}
        path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError) as err:
        load_recipe(path)
    text = err.value.render()
    assert str(path) in text and f"{where}.{key}" in text and "fix:" in text, text


def test_a_bare_tflite_is_benchmark_only(tmp_path):
    """Without a recipe there is nothing to calibrate on; a .tflite recipe
    converts (tests/unit/test_litert_quant_units.py)."""
    from harness.model.recipe import bare_tflite_recipe

    (tmp_path / "m.tflite").write_bytes(b"x")
    with pytest.raises(InputError) as err:
        bare_tflite_recipe(tmp_path / "m.tflite").check_variants(("fp32", "int8"))
    assert "benchmark-only" in err.value.render() and "calibration dataset" in err.value.render()


# -- a model, or a folder, where the recipe goes ------------------------------
HDF5_HEAD = b"\x89HDF\r\n\x1a\n"  # what made the YAML loader say "can't decode byte 0x89"


def suggested_recipe(text: str):
    """The recipe the message proposes, written where it says: (path, YAML)."""
    match = re.search(r"e\.g\. (\S+):\n((?:    .*\n)+?)    then ", text)
    assert match, text
    return Path(match.group(1)), textwrap.dedent(match.group(2))


def refusal(path) -> str:
    with pytest.raises(InputError) as err:
        load_recipe(path)
    text = err.value.render()
    assert text.startswith(f"{path}: "), text
    assert "Traceback" not in text and "codec" not in text
    return text


@pytest.mark.parametrize("name, head", [("detector.h5", HDF5_HEAD), ("detector.keras", b"PK\x03\x04"), ("detector.yaml", HDF5_HEAD)])
def test_a_keras_file_as_the_recipe_gets_a_recipe_that_loads(tmp_path, name, head):
    model = tmp_path / name
    model.write_bytes(head + b"\0" * 64)
    text = refusal(model)
    assert "Keras model, not a recipe" in text
    assert "take a model.yaml recipe" in text and "also takes a bare .tflite" in text
    recipe_path, yaml_text = suggested_recipe(text)
    if model.suffix != ".keras" and model.suffix != ".h5":
        assert f"rename it to {model.stem}.h5" in text  # a source must end in .h5 or .keras
        return
    recipe_path.write_text(yaml_text)
    recipe = load_recipe(recipe_path)
    assert recipe.source == model and recipe.name == "detector"
    assert f"harness run --model {recipe_path}" in text


def test_a_saved_model_folder_as_the_recipe_gets_a_recipe_that_loads(tmp_path):
    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    assert "SavedModel folder" in refusal(folder / "saved_model.pb")
    text = refusal(folder)
    assert "SavedModel folder, not a recipe" in text and "take a model.yaml recipe" in text
    recipe_path, yaml_text = suggested_recipe(text)
    recipe_path.write_text(yaml_text)
    assert load_recipe(recipe_path).is_saved_model and load_recipe(recipe_path).source == folder


def test_a_tflite_given_to_convert_says_how_to_benchmark_it(tmp_path):
    model = tmp_path / "x.tflite"
    model.write_bytes(b"\x1c\0\0\0TFL3" + b"\0" * 64)
    text = refusal(model)
    assert "`harness convert` takes a model.yaml recipe" in text
    assert f"`harness run --model {model}`" in text
    recipe_path, yaml_text = suggested_recipe(text)
    recipe_path.write_text(yaml_text)
    recipe = load_recipe(recipe_path)
    assert recipe.is_tflite and recipe.source == model and recipe.variants == ("fp32",)


def test_a_folder_as_the_recipe_names_the_recipe_and_models_in_it(tmp_path):
    write_recipe(tmp_path)
    text = refusal(tmp_path)
    assert "a folder, not a recipe file" in text and "take a model.yaml recipe" in text
    assert f"did you mean {tmp_path / 'model.yaml'}?" in text and "holds model.h5" in text


def test_other_model_formats_say_what_to_export(tmp_path):
    model = tmp_path / "detector.onnx"
    model.write_bytes(b"\x08\x07")
    text = refusal(model)
    assert "an ONNX model, which the harness does not read" in text and "SavedModel folder" in text


@pytest.mark.parametrize("command", ["run --model detector.h5", "convert detector.h5", "convert x.tflite"])
def test_the_cli_refuses_a_model_where_the_recipe_goes_with_exit_2(tmp_path, monkeypatch, capsys, command):
    from harness.cli import main

    monkeypatch.setenv("HARNESS_REPORTS", str(tmp_path / "reports"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "detector.h5").write_bytes(HDF5_HEAD)
    (tmp_path / "x.tflite").write_bytes(b"\x1c\0\0\0TFL3")
    assert main(command.split()) == 2
    err = capsys.readouterr().err
    given = command.split()[-1]
    assert err.startswith(f"harness {command.split()[0]}: error: {given}: this is a ") and "Traceback" not in err
    assert "model.yaml recipe" in err and "fix:" in err
