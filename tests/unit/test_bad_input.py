"""Bad input: exit code 2, a message naming the thing and the fix, no traceback."""

import json

import numpy as np
import pytest
import yaml

from harness.dataset.coco import load_coco
from harness.errors import InputError
from harness.model.recipe import load_recipe
from harness.model.variants import parse_variant_names


def write_recipe(folder, **overrides):
    np.save(folder / "anchors.npy", np.zeros((4, 4), np.float32))
    (folder / "model.h5").write_bytes(b"not a keras file")
    recipe = {
        "name": "tiny",
        "source": "model.h5",
        "input": {"height": 8, "width": 8, "channels": 3},
        "labels": ["a"],
        "adapter": "ssd-postprocess",
        "postprocess": {"anchors": "anchors.npy"},
        "variants": ["fp32"],
    }
    recipe.update(overrides)
    path = folder / "model.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


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


def test_tflite_source_is_benchmark_only(tmp_path):
    (tmp_path / "m.tflite").write_bytes(b"x")
    path = write_recipe(tmp_path, source="m.tflite", variants=["fp32", "int8"])
    with pytest.raises(InputError) as err:
        load_recipe(path)
    assert "benchmark-only" in err.value.render()
