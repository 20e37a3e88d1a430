"""Recipe and override building for the LiteRT Quantizer path, and the
.tflite recipe's variant rules (pure: no model, no quantizer run)."""

from __future__ import annotations

import re

import pytest

from harness.convert import litert_quant
from harness.convert.selective import Denylist
from harness.errors import InputError
from harness.model.recipe import load_recipe
from tests.recipes import write_recipe


def _by_operation(entries):
    return {(e["regex"], e["operation"]): e["algorithm_key"] for e in entries}


def test_int8_keeps_outputs_float_and_its_int8_input():
    recipe = litert_quant.variant_recipe("int8")
    assert recipe[0]["algorithm_key"] == "min_max_uniform_quantize" and recipe[0]["op_config"]["activation_tensor_config"]["num_bits"] == 8
    assert _by_operation(recipe[1:]) == {(".*", "OUTPUT"): "no_quantize"}


def test_int16x8_and_selective_keep_float_io():
    for variant in ("int16x8", "selective-int8"):
        tail = _by_operation(litert_quant.variant_recipe(variant)[1:])
        assert tail == {(".*", "OUTPUT"): "no_quantize", (".*", "INPUT"): "no_quantize"}, variant
    assert litert_quant.variant_recipe("int16x8")[0]["op_config"]["activation_tensor_config"]["num_bits"] == 16


def test_uint8_input_is_an_unsigned_input_op_config():
    entry = litert_quant.variant_recipe("uint8")[-1]
    assert entry["operation"] == "INPUT" and entry["op_config"]["activation_tensor_config"]["dtype"] == "UINT"


def test_dynamic_and_fp16_leave_io_alone():
    assert len(litert_quant.variant_recipe("dynamic-int8")) == 1
    (fp16,) = litert_quant.variant_recipe("fp16")
    assert fp16["algorithm_key"] == "float_casting" and fp16["op_config"]["weight_tensor_config"] == {
        "num_bits": 16, "symmetric": True, "granularity": "TENSORWISE", "dtype": "FLOAT"
    }


def test_denylist_becomes_no_quantize_overrides_after_the_base():
    name = "model/head/BiasAdd;model/head/Conv2D"
    recipe = litert_quant.variant_recipe("selective-int8", Denylist(nodes=(name,), ops=("LOGISTIC",)))
    assert recipe[-2] == {"regex": ".*", "operation": "LOGISTIC", "algorithm_key": "no_quantize"}
    regex = recipe[-1]["regex"]
    # The quantizer searches the op's scope: its output names, each followed by ';'.
    assert re.search(regex, name + ";") and not re.search(regex, name + "_2;") and not re.search(regex, "x;" + name + ";")


def test_sensitivity_rows_rank_by_rmse_over_scale_and_skip_unquantized_ops():
    ops = [("CONV_2D", "a"), ("RESHAPE", "a_flat"), ("CONV_2D", "b"), ("TFLite_Detection_PostProcess", "boxes")]
    comparison = {"a": {"mse": 0.04}, "a_flat": {"mse": 0.04}, "b": {"mse": 0.01}, "boxes": {"mse": 9.0}}
    scales = {"a": 0.1, "a_flat": 0.1, "b": 0.01, "boxes": 0.0}
    rows = litert_quant.sensitivity_rows(comparison, ops, scales)
    assert [r.tensor_name for r in rows] == ["b", "a"]
    assert rows[0].rmse_over_scale == pytest.approx(10.0) and rows[1].rmse_over_scale == pytest.approx(2.0)


def test_cache_material_names_the_quantizer_version_and_recipe(tmp_path):
    material = litert_quant.cache_material(None, "int16x8")  # type: ignore[arg-type]
    assert material["quantizer"] == "litert-quantizer" and material["quantizer_version"] == "0.11.0"
    assert material["recipe"] == ["static_wi8_ai16", "float32", True]


def _tflite_recipe(tmp_path, **overrides):
    (tmp_path / "m.tflite").write_bytes(b"x")
    return write_recipe(tmp_path, source="m.tflite", **overrides)


def test_a_tflite_recipe_may_ask_for_the_quantizer_variants(tmp_path):
    recipe = load_recipe(_tflite_recipe(tmp_path, variants=["fp32", "int8", "int16x8", "selective-int8", "uint8"]))
    assert recipe.variants == ("fp32", "int8", "int16x8", "selective-int8", "uint8")


def test_a_tflite_recipe_refuses_qat_int8_with_the_fix(tmp_path):
    with pytest.raises(InputError) as err:
        load_recipe(_tflite_recipe(tmp_path, variants=["fp32", "qat-int8"]))
    text = err.value.render()
    assert "qat-int8 cannot be made from a .tflite source" in text and "fix: drop qat-int8" in text


def test_a_tflite_recipe_defaults_to_every_variant_it_can_calibrate(tmp_path):
    path = _tflite_recipe(tmp_path, dataset={"generator": "synthetic", "seed": 1, "splits": {"calib": 4, "val": 4}})
    data = path.read_text().replace("variants:\n- fp32\n", "")
    path.write_text(data)
    assert "qat-int8" not in load_recipe(path).variants and "selective-int8" in load_recipe(path).variants
