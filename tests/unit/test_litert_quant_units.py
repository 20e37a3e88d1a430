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


# -- mixed-int16 ------------------------------------------------------------------

_A16 = [{"regex": ".*", "operation": "*", "algorithm_key": "min_max_uniform_quantize",
         "op_config": {"activation_tensor_config": {"num_bits": 16}, "weight_tensor_config": {"num_bits": 8}}}]


def test_int16_overrides_narrow_the_16x8_entries_to_each_op_and_op_type():
    node = "model/heads/head/concat"
    out = litert_quant.int16_overrides(Denylist(nodes=(node,), ops=("LOGISTIC",)), _A16)
    assert [(e["regex"], e["operation"]) for e in out] == [(".*", "LOGISTIC"), (litert_quant.node_regex(node), "*")]
    assert all(e["op_config"]["activation_tensor_config"]["num_bits"] == 16 for e in out)
    assert re.search(out[1]["regex"], node + ";") and not re.search(out[1]["regex"], node + "_1;")


def test_mixed_int16_puts_the_int16_entries_after_int8_and_keeps_outputs_float():
    recipe = litert_quant.variant_recipe("mixed-int16", Denylist(nodes=("model/head",)))
    bits = [e.get("op_config", {}).get("activation_tensor_config", {}).get("num_bits") for e in recipe]
    assert bits[0] == 8 and 16 in bits[1:]
    assert _by_operation(recipe)[(".*", "OUTPUT")] == "no_quantize"
    assert recipe[-1]["operation"] == "OUTPUT"  # last: an int16 entry matching .* cannot make the outputs int16


def test_mixed_int16_ops_come_from_its_key_then_the_selective_denylist_then_the_search(tmp_path):
    own = load_recipe(write_recipe(tmp_path, variant_options={"mixed-int16": {"ops": ["LOGISTIC"]},
                                                              "selective-int8": {"denylist": ["head"]}}))
    assert litert_quant.sensitive_entries(own, None) == (("LOGISTIC",), litert_quant.MIXED_PLACE)
    shared = load_recipe(write_recipe(tmp_path, variant_options={"selective-int8": {"denylist": ["head"]}}))
    assert litert_quant.sensitive_entries(shared, None)[0] == ("head",)
    bare = load_recipe(write_recipe(tmp_path))
    assert litert_quant.sensitive_entries(bare, {"denylist": ["model/x"]}) == (("model/x",), "the selective-int8 search of this run")
    with pytest.raises(InputError) as err:
        litert_quant.sensitive_entries(bare, None)
    assert "variant_options.mixed-int16.ops" in err.value.render() and "fix:" in err.value.render()


@pytest.mark.parametrize("options, place", [
    ({"mixed-int16": {"ops": "head"}}, "variant_options.mixed-int16.ops"),
    ({"mixed-int16": {"opz": ["head"]}}, "variant_options.mixed-int16"),
])
def test_bad_mixed_int16_options_are_named(tmp_path, options, place):
    with pytest.raises(InputError) as err:
        load_recipe(write_recipe(tmp_path, variant_options=options))
    assert err.value.place is not None and err.value.place.startswith(place), err.value.render()


def test_mixed_int16_cache_key_follows_the_ops(tmp_path):
    a = load_recipe(write_recipe(tmp_path, variant_options={"mixed-int16": {"ops": ["head"]}}))
    b = load_recipe(write_recipe(tmp_path, variant_options={"mixed-int16": {"ops": ["head", "LOGISTIC"]}}))
    assert litert_quant.cache_material(a, "mixed-int16") != litert_quant.cache_material(b, "mixed-int16")
