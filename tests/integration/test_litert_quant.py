"""A float .tflite source quantized by the LiteRT Quantizer: the demo
detector's fp32 variant (made once here by the harness's own converter, so it
holds TFLite_Detection_PostProcess, the custom-op case) becomes
dynamic-int8, int8, int16x8 and selective-int8, each measured with mAP on
`local`; the manifests name the quantizer and the report shows what int8
lost and what selective won back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


pytestmark = pytest.mark.slow
VARIANTS = ["fp32", "dynamic-int8", "int8", "int16x8", "selective-int8"]


@pytest.fixture(scope="module")
def tflite_recipe(demo_recipe, demo_fp32, tmp_path_factory) -> Path:
    """fp32 of the demo detector as a .tflite (the session's conversion cache
    has it when demo_artifacts ran), and a recipe for it with small synthetic
    calibration and eval splits (the demo's generator)."""
    folder = tmp_path_factory.mktemp("float-tflite")
    demo = demo_recipe
    shutil.copyfile(demo_fp32.path, folder / "detector-fp32.tflite")
    shutil.copyfile(demo.postprocess["anchors"], folder / "anchors.npy")
    recipe = {
        "name": "demo-tflite",
        "source": "detector-fp32.tflite",
        "input": {"height": 160, "width": 160, "channels": 3, "mean": [127.5] * 3, "std": [127.5] * 3},
        "labels": list(demo.labels),
        "adapter": "ssd-postprocess",
        "postprocess": {"anchors": "anchors.npy"},
        "dataset": {"generator": "synthetic", "seed": demo.synthetic_seed, "splits": {"calib": 16, "val": 32}},
        "variant_options": {"selective-int8": {"max_map_drop": 0.002, "max_layers": 2}},
        "variants": VARIANTS,
    }
    path = folder / "model.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="module")
def quantized_run(tflite_recipe, tmp_path_factory):
    reports = tmp_path_factory.mktemp("litert-run") / "reports"
    reports.mkdir()
    env = dict(os.environ, HARNESS_REPORTS=str(reports), HARNESS_CACHE=str(reports.parent / "cache"), COLUMNS="220")
    env.pop("HARNESS_STORE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--model", str(tflite_recipe)],
        cwd=reports.parent, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = [p for p in reports.iterdir() if p.is_dir() and not p.name.startswith(".")]
    records = {r["model"]["variant"]: r for r in json.loads((run_dir / "results.json").read_text())["records"]}
    report = subprocess.run(
        [sys.executable, "-m", "harness", "report", "latest", "--format", "md"],
        cwd=reports.parent, env=env, capture_output=True, text=True, timeout=300,
    )
    assert report.returncode == 0, report.stderr[-2000:]
    return records, report.stdout, proc


def _manifest(record: dict) -> dict:
    return json.loads(Path(record["model"]["artifact"]).with_suffix(".manifest.json").read_text())


def test_every_variant_is_measured_with_map_and_names_its_quantizer(quantized_run):
    records, _, _ = quantized_run
    assert sorted(records) == sorted(VARIANTS)
    for variant, record in records.items():
        assert record["status"] == "ok", (variant, record["error"])
        assert record["accuracy"]["n_images"] == 32 and record["accuracy"]["map"] > 0.2, (variant, record["accuracy"])
        manifest = _manifest(record)
        assert set(manifest["loadability"]) == {"ai-edge-litert", "tflite-runtime", "tensorflow"}
        if variant == "fp32":
            assert manifest["sha256"] == record["model"]["sha256"] and "quantizer" not in manifest["converter"]
            continue
        converter = manifest["converter"]
        assert converter["quantizer"] == "litert-quantizer" and converter["version"] == "0.11.0", converter
        assert manifest["quantization_recipe"] and record["model"]["size_bytes"] < 0.4 * records["fp32"]["model"]["size_bytes"]


def test_the_post_process_op_stays_float_and_io_types_match_the_tf_path(quantized_run):
    records, _, _ = quantized_run
    for variant, input_dtype in (("dynamic-int8", "float32"), ("int8", "int8"), ("int16x8", "float32"), ("selective-int8", "float32")):
        manifest = _manifest(records[variant])
        assert manifest["ops"]["TFLite_Detection_PostProcess"] == 1
        assert manifest["inputs"][0]["dtype"] == input_dtype, (variant, manifest["inputs"])
        assert {o["dtype"] for o in manifest["outputs"]} == {"float32"}, (variant, manifest["outputs"])


def test_selective_keeps_ops_float_with_the_workbench_report(quantized_run):
    records, _, _ = quantized_run
    manifest = _manifest(records["selective-int8"])
    chosen = manifest["selective"]
    assert chosen["denylist_source"] == "automatic" and chosen["search"][0]["layers"] == 0
    assert [entry["algorithm_key"] for entry in chosen["no_quantize"]] == ["no_quantize"] * len(chosen["denylist"])
    report = json.loads(Path(records["selective-int8"]["quantization"]["sensitivity_report"]).read_text())
    assert report["layers"][0]["rmse_over_scale"] >= report["layers"][-1]["rmse_over_scale"] > 0
    assert {"tensor_name", "op_name", "mean_squared_error", "scale", "layer"} <= set(report["layers"][0])


def test_the_report_says_what_int8_lost_and_what_selective_won_back(quantized_run):
    records, text, _ = quantized_run
    drop = records["fp32"]["accuracy"]["map"] - records["int8"]["accuracy"]["map"]
    if drop >= 0.003:
        assert f"of the {drop * 100:.1f} points int8 lost" in text, text
    else:
        assert "int8 lost under 0.3 points" in text, text
    assert "selective-int8" in text and "LiteRT Quantizer" in text


def test_the_quantizer_path_never_imports_tensorflow(tflite_recipe, tmp_path):
    """Converting a .tflite recipe (cache warm from the run above or not)
    leaves TensorFlow out of the process."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from harness.convert.converter import convert_variants\n"
        "from harness.model.datasets import resolve_dataset\n"
        "from harness.model.recipe import load_recipe\n"
        f"recipe = load_recipe(Path({str(tflite_recipe)!r}))\n"
        f"cache = Path({str(tmp_path)!r})\n"
        "calib = resolve_dataset(recipe, recipe.calibration, cache)\n"
        "out = convert_variants(recipe, ['fp32', 'fp16', 'dynamic-int8', 'uint8'], calib, cache, check_loadability=False)\n"
        "assert all(hasattr(a, 'path') for a in out.values()), out\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
