"""Real TensorFlow conversion of the demo detector into each variant."""

from __future__ import annotations

import json

import pytest

from harness.convert.converter import Artifact, convert_variants
from harness.model.variants import DEFAULT_VARIANTS

EXPECTED_INPUT_DTYPE = {
    "fp32": "float32",
    "fp16": "float32",
    "dynamic-int8": "float32",
    "int8": "int8",
    "uint8": "uint8",
    "int16x8": "float32",
    "qat-int8": "int8",
    "selective-int8": "float32",
}


@pytest.mark.parametrize("variant", DEFAULT_VARIANTS)
def test_each_variant_converts_with_a_manifest(variant, demo_artifacts):
    artifact = demo_artifacts[variant]
    assert isinstance(artifact, Artifact), f"{variant} failed: {artifact}"
    manifest = json.loads(artifact.manifest_path.read_text())
    assert manifest["variant"] == variant
    assert manifest["size_bytes"] == artifact.path.stat().st_size == artifact.size_bytes
    assert manifest["converter"]["tensorflow"]
    assert "TFLite_Detection_PostProcess" in manifest["ops"]
    (inp,) = manifest["inputs"]
    assert inp["dtype"] == EXPECTED_INPUT_DTYPE[variant]
    if inp["dtype"] in ("int8", "uint8"):
        assert inp["quantization"]["scale"] > 0
    # The post-process outputs are float in every variant; all four are there.
    assert sorted(o["dtype"] for o in manifest["outputs"]) == ["float32"] * 4
    assert (manifest["calibration"] is not None) == (variant in ("int8", "uint8", "int16x8", "selective-int8"))
    assert set(manifest["loadability"]) == {"ai-edge-litert", "tflite-runtime", "tensorflow"}
    assert manifest["loadability"]["ai-edge-litert"] == "ok"


def test_quantised_variants_are_smaller(demo_artifacts):
    fp32 = demo_artifacts["fp32"].size_bytes
    assert demo_artifacts["fp16"].size_bytes < 0.6 * fp32
    for variant in ("dynamic-int8", "int8", "uint8", "int16x8", "qat-int8", "selective-int8"):
        assert demo_artifacts[variant].size_bytes < 0.4 * fp32, variant


def test_integer_variants_hold_integer_ops(demo_artifacts):
    int8_ops = json.loads(demo_artifacts["int8"].manifest_path.read_text())["ops"]
    assert "QUANTIZE" in int8_ops  # the int8 input enters a quantised graph
    assert "DEQUANTIZE" not in json.loads(demo_artifacts["fp32"].manifest_path.read_text())["ops"]


def test_same_inputs_are_never_converted_twice(demo_recipe, demo_datasets, demo_artifacts, session_cache):
    calibration, _ = demo_datasets
    again = convert_variants(demo_recipe, DEFAULT_VARIANTS, calibration, session_cache)
    assert all(isinstance(a, Artifact) and a.cached for a in again.values())
    assert {v: a.sha256 for v, a in again.items()} == {v: a.sha256 for v, a in demo_artifacts.items()}


def test_cli_convert_writes_the_variants(run_cli, demo_artifacts, worker_cache, tmp_path):
    from harness import paths

    out = tmp_path / "out"
    result = run_cli(
        "convert", str(paths.demo_recipe_path()), "--variants", "fp32,int8", "--out", str(out),
        env={"HARNESS_CACHE": str(worker_cache)},
    )
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "demo-detector-fp32.manifest.json", "demo-detector-fp32.tflite",
        "demo-detector-int8.manifest.json", "demo-detector-int8.tflite",
    ]
    assert "cached" in result.stdout


def test_qat_and_selective_record_what_was_done(demo_artifacts):
    qat = demo_artifacts["qat-int8"].manifest["qat"]
    assert qat["loss"] == "ssd-focal" and qat["steps"] == 64
    selective = demo_artifacts["selective-int8"]
    report = json.loads(selective.sensitivity_path.read_text())
    assert report["layers"] and {"tensor_name", "op_name", "rmse_over_scale", "mean_error"} <= set(report["layers"][0])
    assert report["denylist_source"] == "automatic" and report["search"]
    assert selective.manifest["selective"]["top_layers"]
