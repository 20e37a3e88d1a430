"""`harness demo` end to end: datasets, variants, the local device, reports."""

from __future__ import annotations

import json
import sqlite3

import pytest

from harness.model.variants import DEFAULT_VARIANTS

pytestmark = pytest.mark.slow


def test_every_variant_has_an_ok_record_with_all_measurements(demo_run):
    _, run_dir, _ = demo_run
    records = json.loads((run_dir / "results.json").read_text())["records"]
    assert sorted(r["model"]["variant"] for r in records) == sorted(DEFAULT_VARIANTS)
    for r in records:
        assert r["status"] == "ok", r["error"]
        assert r["device"]["name"] == "local"
        assert r["device"]["runtime"]["name"] == "ai-edge-litert"
        lat = r["latency_ms"]
        assert lat["n"] >= 100 and 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert lat["p90_ci"][0] <= lat["p90"] <= lat["p90_ci"][1]
        assert r["memory_mb"]["peak"] > 0
        assert r["model"]["size_bytes"] > 0
        acc = r["accuracy"]
        assert acc["n_images"] == 200 and 0 < acc["map"] <= acc["map50"] <= 1


def test_int8_map_is_within_two_points_of_fp32(demo_run):
    _, run_dir, _ = demo_run
    records = {r["model"]["variant"]: r for r in json.loads((run_dir / "results.json").read_text())["records"]}
    assert abs(records["fp32"]["accuracy"]["map"] - records["int8"]["accuracy"]["map"]) <= 0.02


def test_raw_samples_and_detections_are_kept(demo_run):
    reports, run_dir, _ = demo_run
    records = json.loads((run_dir / "results.json").read_text())["records"]
    db = sqlite3.connect(reports / "results.sqlite")
    for r in records:
        samples = json.loads((run_dir / "devices" / "local" / f"demo-detector-{r['model']['variant']}.samples.json").read_text())
        assert len(samples["samples"]) == r["latency_ms"]["n"]
        (size_bytes,) = db.execute(
            "SELECT SUM(LENGTH(b.samples_ns)) FROM sample_batches b JOIN records r ON r.id = b.record_id"
            " WHERE r.variant = ?",
            (r["model"]["variant"],),
        ).fetchone()
        assert size_bytes == 8 * r["latency_ms"]["n"]
        detections = json.loads(open(r["accuracy"]["detections"]).read())
        assert detections and set(detections[0]) == {"image_id", "category_id", "bbox", "score"}


def test_report_shows_ratios_to_fp32(demo_run):
    _, run_dir, proc = demo_run
    md = (run_dir / "report.md").read_text()
    assert "p50 vs fp32" in md and "size vs fp32" in md
    assert "| int8 |" in md
    html = (run_dir / "report.html").read_text()
    assert html.startswith("<!doctype html>") and "<svg" in html and "http" not in html.split("<body>", 1)[1]
    assert "p50 vs fp32" in proc.stdout
    assert str(run_dir / "report.html") in proc.stdout


def test_report_command_rerenders_from_the_store(demo_run, run_cli):
    reports, run_dir, _ = demo_run
    result = run_cli("report", "latest", "--format", "json", env={"HARNESS_REPORTS": str(reports)})
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)) == len(DEFAULT_VARIANTS)
    csv_out = run_cli("report", "--format", "csv", env={"HARNESS_REPORTS": str(reports)})
    assert csv_out.stdout.count("\n") == len(DEFAULT_VARIANTS) + 1


def test_quantization_workbench_done_when(demo_run):
    """Issue 3: QAT within 0.5 pt of int8; selective recovers half of int8's
    loss, or the report says int8 lost under 0.3 points."""
    _, run_dir, proc = demo_run
    records = {r["model"]["variant"]: r for r in json.loads((run_dir / "results.json").read_text())["records"]}
    maps = {v: r["accuracy"]["map"] for v, r in records.items()}
    assert maps["qat-int8"] >= maps["int8"] - 0.005
    int8_loss = maps["fp32"] - maps["int8"]
    md, html = (run_dir / "report.md").read_text(), (run_dir / "report.html").read_text()
    if int8_loss < 0.003:
        for text in (md, html, proc.stdout):
            assert "int8 lost under 0.3 points" in text and "nothing for selective quantization to recover" in text
    else:
        assert maps["fp32"] - maps["selective-int8"] <= int8_loss / 2
    q = records["selective-int8"]["quantization"]
    assert q["top_layers"] and q["sensitivity_report"]
    for r in records.values():
        assert set(r["quantization"]["loadability"]) == {"ai-edge-litert", "tflite-runtime", "tensorflow"}
    for text in (md, html):
        assert "RMSE" in text and "loads in" in text and q["top_layers"][0]["layer"] in text


def test_each_variant_is_reported_as_it_is_ready_and_the_local_device_sends_nothing(demo_run):
    import re

    _, run_dir, proc = demo_run
    # Standard error is a file here: the bar is drawn once, at the end, so
    # the per-variant lines are what shows the conversion stage moving.
    ready = re.findall(r"✓ (\S+): (?:converted in \d+\.\d s|from the cache)", proc.stderr)
    assert ready == list(DEFAULT_VARIANTS), proc.stderr[-3000:]
    # Copying into its own cache is not an upload ("sent 116.92 MB (13 files)").
    assert "sent" not in proc.stdout and "sent" not in proc.stderr
    transfers = json.loads((run_dir / "results.json").read_text())["run"]["transfers"]
    assert transfers["local"]["files_uploaded"] > 0  # the data still says what was copied
