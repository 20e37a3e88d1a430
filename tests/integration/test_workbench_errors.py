"""Bad input to the quantization workbench (exit 2, the file and field
named, the fix suggested, no traceback), and the other model sources."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.cli_checks import assert_clean_input_error

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent


def _tiny(folder: Path, kind: str = "tiny") -> None:
    subprocess.run([sys.executable, str(HERE / "tiny_detector.py"), str(folder), kind], check=True, capture_output=True)


def _edit(recipe: Path, **changes) -> Path:
    data = yaml.safe_load(recipe.read_text())
    data.update(changes)
    recipe.write_text(yaml.safe_dump(data))
    return recipe


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    _tiny(folder)
    return folder


def test_denylist_naming_a_missing_layer_lists_close_matches(run_cli, tiny, tmp_path):
    recipe = _edit(
        tiny / "model.yaml",
        variants=["selective-int8"],
        variant_options={"selective-int8": {"denylist": ["box_encoding"]}},
    )
    result = run_cli("convert", str(recipe))
    assert_clean_input_error(result, str(recipe), "variant_options.selective-int8.denylist", "'box_encoding'", "close matches", "box_encodings")


def test_keras3_model_asked_for_qat_says_what_qat_needs(run_cli, tiny, tmp_path):
    _tiny(tmp_path, "keras3")
    data = yaml.safe_load((tiny / "model.yaml").read_text())
    data.update(
        source="keras3.keras",
        variants=["qat-int8"],
        training={"dataset": {"split": "train", "size": 8}, "steps": 1},
    )
    (tmp_path / "anchors.npy").write_bytes((tiny / "anchors.npy").read_bytes())
    recipe = tmp_path / "model.yaml"
    recipe.write_text(yaml.safe_dump(data))
    result = run_cli("convert", str(recipe))
    assert_clean_input_error(result, str(recipe), "source", "tf_keras (Keras 2)", "qat-int8", "fix:")


def test_model_without_detection_outputs_names_the_adapter(run_cli, tiny, tmp_path):
    _tiny(tmp_path, "unnamed")
    data = yaml.safe_load((tiny / "model.yaml").read_text())
    data.update(source="features.h5", variants=["fp32"])
    (tmp_path / "anchors.npy").write_bytes((tiny / "anchors.npy").read_bytes())
    recipe = tmp_path / "model.yaml"
    recipe.write_text(yaml.safe_dump(data))
    result = run_cli("convert", str(recipe))
    assert_clean_input_error(result, str(recipe), "adapter", "box_encodings", "fix:")


def test_empty_calibration_folder(run_cli, tiny, tmp_path):
    (tmp_path / "calib").mkdir()
    (tmp_path / "instances_calib.json").write_text("{}")
    data = yaml.safe_load((tiny / "model.yaml").read_text())
    data.update(
        source=str(tiny / "tiny.h5"),
        dataset={"calibration": {"annotations": "instances_calib.json", "images": "calib"}},
    )
    data["postprocess"]["anchors"] = str(tiny / "anchors.npy")
    recipe = tmp_path / "model.yaml"
    recipe.write_text(yaml.safe_dump(data))
    result = run_cli("convert", str(recipe))
    assert_clean_input_error(result, str(recipe), "dataset.calibration.images", "empty", "fix:")


def test_tflite_recipe_asked_for_int8(run_cli, tmp_path):
    (tmp_path / "m.tflite").write_bytes(b"x")
    result = run_cli("run", "--model", str(tmp_path / "m.tflite"), "--variants", "fp32,int8")
    assert_clean_input_error(result, "benchmark-only", "fix:")


@pytest.mark.parametrize("folder", ["keras", "plain"])
def test_saved_model_directory_sources_convert(run_cli, tmp_path, folder):
    _tiny(tmp_path, "savedmodel")
    recipe = _edit(tmp_path / "model.yaml", source=folder, variants=["fp32", "int8"])
    result = run_cli("convert", str(recipe), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr[-2000:]
    assert (tmp_path / "out" / "tiny-detector-int8.tflite").is_file()
