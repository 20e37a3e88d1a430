"""The second bundled model, models/shapes-yolo: a YOLO-style detector whose
one [1, 4+nc, N] output holds boxes in input pixels next to sigmoid scores.
Converted from the committed detector.h5 and measured on `local` (the real
agent, its yolo reader, COCO mAP on the 200 val images).

What it shows (measured on a 2-core host of this kind): fp32 mAP 0.200, full int8
0.133. The int8 file gives the concatenated output one scale for 0..160 px
boxes and 0..1 scores (0.627 per step), and the converter's same-scale rule
for CONCATENATION/RESHAPE carries that scale back to each level's sigmoid
(a requantize after LOGISTIC's own 1/256): every score becomes a multiple of 0.627.

Selective-int8 finds the score path by itself (no denylist in the recipe):
the whole-model sensitivity (harness/convert/sensitivity.py) compares the
int8 and the float model tensor by tensor, sees the error jump at each
level's score reshape, and keeps it float with the nodes that share its
scale (the score concatenation, the boxes+scores concatenation, the output
transpose). Measured: 5 nodes, calibration mAP 0.114 -> 0.186 (fp32 0.210),
val mAP 0.133 -> 0.175. QuantizationDebugger's layer-wise errors still
miss it (a concatenation whose inputs already carry the shared scale
shows rmse_over_scale ~3e-6): that ranking is kept in the report, not
searched with.

The search's curve (k = 0 and each list kept) is in sensitivity.json,
results.json and the HTML report, each point timed on the device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import paths

pytestmark = pytest.mark.slow
RECIPE = paths.models_dir() / "shapes-yolo" / "model.yaml"
# The bar (16, Done when): full int8 loses at least 2 points.
MIN_INT8_LOSS = 0.02
# The last concatenation, the one that shares a scale between pixels and scores.
SHARED_SCALE_CONCAT = "heads/head/concat"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, worker_cache) -> Path:
    reports = tmp_path_factory.mktemp("shapes-yolo") / "reports"
    reports.mkdir()
    env = dict(os.environ, HARNESS_REPORTS=str(reports), HARNESS_CACHE=str(worker_cache), COLUMNS="200")
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--model", str(RECIPE), "--devices", "local"],
        cwd=reports.parent, env=env, capture_output=True, text=True, timeout=1500,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (folder,) = [p for p in reports.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return folder


@pytest.fixture(scope="module")
def records(run_dir) -> dict[str, dict]:
    return {r["model"]["variant"]: r for r in json.loads((run_dir / "results.json").read_text())["records"]}


def _map(records: dict[str, dict], variant: str) -> float:
    record = records[variant]
    assert record["status"] == "ok", record["error"]
    return record["accuracy"]["map"]


def test_fp32_detects_the_shapes(records):
    assert records["fp32"]["accuracy"]["n_images"] == 200
    assert _map(records, "fp32") > 0.15


def test_full_int8_loses_at_least_two_points_but_still_detects(records):
    fp32, int8 = _map(records, "fp32"), _map(records, "int8")
    assert fp32 - int8 >= MIN_INT8_LOSS, (fp32, int8)
    assert int8 > 0.05, int8  # points lost, not everything


def test_the_layer_wise_sensitivity_cannot_see_the_shared_scale_and_the_whole_model_one_can(records):
    selective = records["selective-int8"]["quantization"]
    report = json.loads(Path(selective["sensitivity_report"]).read_text())
    assert report["denylist_source"] == "automatic"
    (concat,) = [layer for layer in report["layers"] if layer["tensor_name"].endswith(SHARED_SCALE_CONCAT)]
    assert concat["op_name"] == "CONCATENATION" and concat["rmse_over_scale"] < 0.01  # rounding alone: ~0.29
    # The whole-model measure: the concatenation adds no error of its own,
    # but it follows every score node that does, so it is kept float with them.
    (whole,) = [node for node in report["nodes"] if node["node"].endswith(SHARED_SCALE_CONCAT)]
    assert whole["added"] <= 0
    assert any(n.endswith(SHARED_SCALE_CONCAT) for n in report["denylisted_nodes"])
    assert any(node["node"].endswith("_scores/Reshape") and any(f.endswith(SHARED_SCALE_CONCAT) for f in node["followers"])
               for node in report["nodes"][:4])


def test_selective_int8_wins_back_at_least_half_with_at_most_8_layers_in_float(records):
    fp32, int8, selective = _map(records, "fp32"), _map(records, "int8"), _map(records, "selective-int8")
    denylist = records["selective-int8"]["quantization"]["denylist"]
    assert 1 <= len(denylist) <= 8, denylist
    assert all("scores" in n or "head" in n or n.startswith("StatefulPartitionedCall") for n in denylist), denylist
    assert selective - int8 >= (fp32 - int8) / 2, (fp32, int8, selective)


def test_the_search_curve_is_kept_with_size_and_latency_on_the_device(records, run_dir):
    q = records["selective-int8"]["quantization"]
    curve = q["selection"]["curve"]
    assert [p["k"] for p in curve][0] == 0 and len(curve) >= 2
    assert curve[-1]["k"] == len(q["denylist"]) and curve[-1]["map"] > curve[0]["map"]
    for point in curve:
        assert point["size_bytes"] > 0 and point["latency_p50_ms"]["local"] > 0, point
    report = json.loads(Path(q["sensitivity_report"]).read_text())
    assert [p["latency_p50_ms"] for p in report["curve"]] == [p["latency_p50_ms"] for p in curve]
    html = (run_dir / "report.html").read_text()
    assert "selective-int8 search on local" in html and "calibration mAP" in html


# -- mixed-int16 and qat-int8 (issue 16, items 3 and 4) ------------------------------


def test_mixed_int16_is_measured_and_loads_on_litert_only(records):
    """int8 with the score path at int16 activations, through the LiteRT
    Quantizer's per-op overrides: measured with its mAP and latency; the
    int8->int16 QUANTIZE it needs does not prepare in tflite-runtime 2.14
    nor tf.lite 2.21, which the manifest records."""
    record = records["mixed-int16"]
    assert _map(records, "mixed-int16") > _map(records, "int8") + 0.01  # the scores keep their levels
    assert record["latency_ms"]["p90"] > 0
    q = record["quantization"]
    assert q["loadability"]["ai-edge-litert"] == "ok"
    assert "QUANTIZE" in q["loadability"]["tflite-runtime"], q["loadability"]
    # The recipe names no ops: mixed-int16 takes what this run's selective-int8 search kept float.
    found = records["selective-int8"]["quantization"]["denylist"]
    assert f"{len(found)} op(s) at int16" in q["method"] and "selective-int8 search of this run" in q["method"], q["method"]
    manifest = json.loads(Path(record["model"]["artifact"]).with_suffix(".manifest.json").read_text())
    assert manifest["converter"]["quantizer"] == "litert-quantizer" and manifest["inputs"][0]["dtype"] == "int8"


def test_qat_int8_distills_the_fp32_model_with_the_score_path_float(worker_cache, tmp_path, records):
    """qat-int8 with `loss: distill`, a few steps (CI time: what is checked
    is the path, not the accuracy; the accuracy is in the README and
    docs/quantization.md): the recipe names no denylist, so the fine-tuning
    leaves what the selective-int8 search kept float un-annotated (the
    search of the run above, found in the cache), the SiLU convolutions are
    split where the int8 file requantises, and the export is the fine-tuned
    weights quantized as selective-int8 with those same nodes float."""
    recipe = tmp_path / "model.yaml"
    text = RECIPE.read_text().replace("source: detector.h5", f"source: {RECIPE.parent / 'detector.h5'}")
    recipe.write_text(text.replace("variant_options:\n", "variant_options:\n  qat-int8: {steps: 4}\n", 1))
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "convert", str(recipe), "--variants", "qat-int8", "--out", str(tmp_path / "out")],
        cwd=tmp_path, env=dict(os.environ, HARNESS_CACHE=str(worker_cache)), capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((tmp_path / "out" / "shapes-yolo-qat-int8.manifest.json").read_text())
    training = manifest["qat"]
    assert training["loss"] == "distill" and training["steps"] == 4 and training["fake_quant_ranges_seeded"] > 10
    assert training["kept_float_from"] == "the selective-int8 search"
    assert {"head", "class_scores", "p3_scores", "output0"} <= set(training["kept_float"]), training["kept_float"]
    assert training["silu_split"] == 6  # two SiLU convolutions per level, three levels
    # The same nodes in the fine-tuned model's export (its tensor names are model_1/..., so by layer).
    searched = records["selective-int8"]["quantization"]["denylist"]
    exported = manifest["selective"]["denylist"]
    assert len(exported) == len(searched), (exported, searched)
    for layer in set(training["kept_float"]) - {"output0"}:
        assert any(f"/{layer}/" in name for name in exported), (layer, exported)
    assert "selective-int8" in training["export"] and manifest["selective"]["denylist_source"] == "the nodes qat-int8 trained float"
    assert manifest["loadability"]["ai-edge-litert"] == "ok"
