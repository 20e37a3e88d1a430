"""The quantization workbench on a model that is not the demo: a
tf_keras.applications MobileNetV2 detector with random weights, one recipe
per output adapter, converted to every variant and run on `local`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import paths
from tests.conftest import records_only_harness

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
ALL_VARIANTS = ["fp32", "fp16", "dynamic-int8", "int8", "uint8", "int16x8", "qat-int8", "selective-int8"]


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mobilenet")
    subprocess.run([sys.executable, str(HERE / "mobilenet_detector.py"), str(folder)], check=True, capture_output=True)
    return folder


@pytest.fixture(scope="module")
def workbench_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("workbench-cache")


def _run(args, reports: Path, cache: Path, timeout: float = 1500):
    """`harness ARGS` measuring with RECORDS_ONLY_PLAN: these tests read records, not latency."""
    env = dict(os.environ, HARNESS_REPORTS=str(reports), HARNESS_CACHE=str(cache), COLUMNS="200")
    harness, env = records_only_harness(env)
    return subprocess.run([*harness, *args], cwd=reports.parent, env=env, capture_output=True, text=True, timeout=timeout)


def _records(reports: Path) -> dict[str, dict]:
    (run_dir,) = [p for p in reports.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return {r["model"]["variant"]: r for r in json.loads((run_dir / "results.json").read_text())["records"]}


@pytest.fixture(scope="module")
def ssd_run(mobilenet, workbench_cache, tmp_path_factory):
    reports = tmp_path_factory.mktemp("ssd") / "reports"
    reports.mkdir()
    proc = _run(["run", "--model", str(mobilenet / "ssd.yaml")], reports, workbench_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return reports, _records(reports), proc


def test_every_variant_converts_and_runs_on_local_or_is_skipped_with_the_reason(ssd_run):
    _, records, _ = ssd_run
    assert sorted(records) == sorted(ALL_VARIANTS)
    for variant, r in records.items():
        loads = r["quantization"]["loadability"]
        assert set(loads) == {"ai-edge-litert", "tflite-runtime", "tensorflow"}
        if loads["ai-edge-litert"] == "ok":
            assert r["status"] == "ok", (variant, r["error"])
            assert r["latency_ms"]["n"] > 0 and r["accuracy"]["n_images"] == 16
        else:  # random weights can make a variant no runtime prepares (int16x8 here): said, not dropped
            assert r["status"] == "skipped" and "cannot load" in r["error"]["message"], r
    assert sum(r["status"] == "ok" for r in records.values()) >= 7


def test_loadability_finds_what_tflite_runtime_2_14_cannot_prepare(ssd_run):
    _, records, _ = ssd_run
    if paths.tflite214_python() is None:
        pytest.skip("no tflite-runtime 2.14 side venv (make .venv-tflite214)")
    # The 2.21 converter's dynamic-range TRANSPOSE_CONV (docs/quantization.md) and the float fpn_up that QAT leaves.
    assert "TRANSPOSE_CONV" in records["dynamic-int8"]["quantization"]["loadability"]["tflite-runtime"]
    assert records["fp32"]["quantization"]["loadability"]["tflite-runtime"] == "ok"


def test_sensitivity_and_training_facts_are_recorded_and_reported(ssd_run):
    reports, records, proc = ssd_run
    selective = records["selective-int8"]["quantization"]
    assert selective["top_layers"] and selective["sensitivity_report"].endswith(".sensitivity.json")
    report = json.loads(Path(selective["sensitivity_report"]).read_text())
    assert report["layers"][0]["rmse_over_scale"] >= report["layers"][-1]["rmse_over_scale"]
    assert len(report["search"]) <= 3  # max_layers 2: 0, 1, 2 layers tried at most
    assert records["qat-int8"]["quantization"]["training"]["steps"] == 4
    (run_dir,) = [p for p in reports.iterdir() if p.is_dir() and not p.name.startswith(".")]
    md, html = (run_dir / "report.md").read_text(), (run_dir / "report.html").read_text()
    for text in (md, html, proc.stdout):
        assert "Quantization" in text or "quantization" in text
        assert "tflite-rt" in text and "RMSE" in text


def test_boxes_scores_adapter_with_a_user_denylist(mobilenet, workbench_cache, tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    proc = _run(
        ["run", "--model", str(mobilenet / "boxes-scores.yaml"), "--variants", "fp32,int8,selective-int8"],  # qat-int8: covered by ssd_run
        reports, workbench_cache,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = _records(reports)
    for r in records.values():
        assert r["status"] == "ok", r["error"]
        assert r["accuracy"] is not None and 0 <= r["accuracy"]["map"] <= 1
    detections = json.loads(Path(records["fp32"]["accuracy"]["detections"]).read_text())
    assert detections and len({d["category_id"] for d in detections}) > 1  # class-aware NMS keeps every class
    q = records["selective-int8"]["quantization"]
    assert "CONCATENATION" in q["denylist"] and any("Conv1" in n for n in q["denylist"])


def test_second_convert_converts_nothing_and_says_so(mobilenet, workbench_cache, ssd_run, tmp_path):
    reports = tmp_path / "reports"
    proc = _run(["convert", str(mobilenet / "ssd.yaml")], reports, workbench_cache)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("cached") == len(ALL_VARIANTS)
    assert "nothing converted" in proc.stdout


def test_a_bare_tflite_is_benchmarked_as_it_is(ssd_run, workbench_cache, tmp_path):
    _, records, _ = ssd_run
    model = Path(records["fp32"]["model"]["artifact"])
    reports = tmp_path / "reports"
    reports.mkdir()
    proc = _run(["run", "--model", str(model)], reports, workbench_cache)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (record,) = _records(reports).values()
    assert record["status"] == "ok" and record["accuracy"] is None and record["latency_ms"]["n"] > 0
    assert record["model"]["name"] == model.stem


def test_a_device_on_tflite_runtime_2_14_skips_what_it_cannot_load(mobilenet, workbench_cache, ssd_run, tmp_path):
    python = paths.tflite214_python()
    if python is None:
        pytest.skip("no tflite-runtime 2.14 side venv (make .venv-tflite214)")
    from harness.device import Device
    from harness.model.recipe import load_recipe
    from harness.results.store import SqliteStore
    from harness.runner import RunPlan, execute

    os.environ["HARNESS_CACHE"] = str(workbench_cache)
    try:
        device = Device(name="old-runtime", profile="x86-cpu", kind="local", python=str(python), cache_dir=str(tmp_path / "dev"))
        plan = RunPlan(load_recipe(mobilenet / "ssd.yaml"), ("fp32", "dynamic-int8"), (device,), tmp_path / "reports")
        with SqliteStore(tmp_path / "reports" / "results.sqlite") as store:
            outcome = execute(plan, store)
    finally:
        del os.environ["HARNESS_CACHE"]
    by_variant = {r.model.variant: r for r in outcome.records}
    assert by_variant["fp32"].status == "ok" and by_variant["fp32"].device.runtime.name == "tflite-runtime"
    skipped = by_variant["dynamic-int8"]
    assert skipped.status == "skipped" and "tflite-runtime 2.14" in skipped.error.message and "TRANSPOSE_CONV" in skipped.error.message
