"""Reports of the session's real demo run: the HTML in a real browser,
comparisons on real measurements, history, pytest-benchmark's compare.

The demo run is shared (tests/conftest.py `demo_run`); tests that add runs
work on a copy of its reports folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from harness.results.record import DeviceInfo, ModelInfo
from harness.results.store import RunInfo, SqliteStore
from harness.model.variants import DEFAULT_VARIANTS
from harness.report.html import render_html
from tests import browser
from tests.store_records import make_record, samples_ns

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def with_slower_run(demo_run, demo_artifacts, worker_cache, tmp_path_factory):
    """A copy of the demo's reports plus one `harness run --model
    demo-detector.tflite` whose file is really the int16x8 variant: the same
    (device, model, variant) key as the demo's fp32, really measured slower."""
    reports, run_dir, _ = demo_run
    copy = tmp_path_factory.mktemp("reports-copy") / "reports"
    shutil.copytree(reports, copy, ignore=shutil.ignore_patterns(".cache"))
    model = copy.parent / "demo-detector.tflite"
    shutil.copyfile(demo_artifacts["int16x8"].path, model)
    env = dict(os.environ, HARNESS_REPORTS=str(copy), HARNESS_CACHE=str(worker_cache), COLUMNS="200")
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--model", str(model)], cwd=copy.parent, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (candidate,) = [p.name for p in copy.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != run_dir.name]
    return copy, run_dir.name, candidate


def report_json(run_cli, reports: Path, *argv: str) -> dict:
    result = run_cli(*argv, "--format", "json", "--reports", str(reports))
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_demo_html_renders_its_charts_in_chromium_without_network(demo_run, tmp_path):
    _, run_dir, _ = demo_run
    page = browser.load(run_dir / "report.html", tmp_path / "chromium", fragment="#hide=int16x8", measure=True)
    assert page.page_requests == ()
    body = re.search(r"<body[^>]*>", page.dom).group(0)
    charts = int(re.search(r"data-charts=\"(\d+)\"", body).group(1))  # set by the report's script once it ran
    assert charts >= 5, body  # trade-off, distributions, memory, size, sensitivity
    assert page.dom.count("class=\"front\"") >= 1 and "Pareto" in page.dom
    for variant in DEFAULT_VARIANTS:
        assert f"data-variant=\"{variant}\"" in page.dom, variant
    # The URL fragment unticked int16x8: its rows and marks are hidden, the others are not.
    hidden = re.findall(r"<(?:tr|g)[^>]*class=\"[^\"]*\boff\b[^\"]*\"[^>]*>", page.dom)
    assert hidden and all("data-variant=\"int16x8\"" in tag for tag in hidden)
    # In a 1400 px window every results table fits its container: nothing to scroll to.
    boxes = re.findall(r"<div class=\"scroll\"[^>]*>\s*<table class=\"results\"", page.dom)
    overflow = [int(px) for px in re.findall(r"data-overflow-px=\"(\d+)\"[^>]*>\s*<table class=\"results\"", page.dom)]
    assert boxes and len(overflow) == len(boxes) and set(overflow) == {0}, overflow


def test_hiding_a_front_variant_hides_its_front_segments(tmp_path):
    """A front of three (int8 fastest, fp16, fp32 most accurate): unticking
    fp16 hides both segments that end at it and nothing else."""
    records = [make_record(variant=v, p50_ms=ms, map_=m) for v, ms, m in (("int8", 0.5, 0.30), ("fp16", 0.8, 0.33),
                                                                           ("fp32", 0.9, 0.36))]
    out = tmp_path / "front.html"
    out.write_text(render_html(records, title="front"))
    page = browser.load(out, tmp_path / "chromium", fragment="#hide=fp16")
    segments = re.findall(r"<line[^>]*class=\"front-segment[^\"]*\"[^>]*>", page.dom)
    assert len(segments) == 2, segments
    for tag in segments:
        assert " off" in tag and "\"fp16\"" in tag, tag
    page = browser.load(out, tmp_path / "chromium", fragment="#hide=int16x8")  # not in the chart: nothing hidden
    assert not re.findall(r"<line[^>]*class=\"front-segment off\"", page.dom)


def test_the_network_check_catches_a_page_that_fetches(tmp_path):
    """The detector above can fail: a page that loads an image over http is caught."""
    leaky = tmp_path / "leaky.html"
    leaky.write_text("<!doctype html><title>t</title><img src='http://127.0.0.1:9/x.png'>")
    assert browser.load(leaky, tmp_path / "chromium").page_requests == ("http://127.0.0.1:9/x.png",)


def test_a_script_in_a_name_is_shown_as_text_not_run(run_cli, tmp_path):
    hostile = "<script>document.title='pwned'</script>\"'><img src=x onerror=\"document.title='pwned'\">"
    with SqliteStore(tmp_path / "results.sqlite") as store:
        store.begin_run(RunInfo("h1", "2026-01-01T00:00:00Z", "0.1.0", "finished", "run", str(tmp_path)))
        for variant in ("fp32", "int8"):
            base = make_record(run_id="h1", variant=variant)
            store.add_record(replace(base, device=DeviceInfo(hostile, "x86-cpu"), model=ModelInfo(hostile, variant, size_bytes=9)),
                             samples_ns(2.0))
    out = tmp_path / "hostile.html"
    assert run_cli("report", "--format", "html", "--out", str(out), "--reports", str(tmp_path)).exit_code == 0
    page = browser.load(out, tmp_path / "chromium")
    assert "<title>Edge Harness run h1</title>" in page.dom and "pwned</title>" not in page.dom
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in page.dom  # shown as text
    assert "data-charts=" in page.dom  # the report's own script still ran


def test_a_run_compared_with_itself_is_same_for_every_pair(demo_run, run_cli):
    reports, run_dir, _ = demo_run
    pairs = report_json(run_cli, reports, "report", run_dir.name, "--baseline", run_dir.name)["pairs"]
    assert len(pairs) == len(DEFAULT_VARIANTS)
    assert {p["verdict"] for p in pairs} == {"same"} and {p["ratio"] for p in pairs} == {1.0}


def test_a_really_slower_model_is_flagged_slower_in_every_form(with_slower_run, run_cli):
    reports, baseline, candidate = with_slower_run
    pairs = {p["variant"]: p for p in report_json(run_cli, reports, "report", candidate, "--baseline", baseline)["pairs"]}
    fp32 = pairs.pop("fp32")
    assert fp32["verdict"] == "slower" and fp32["ratio"] > 5 and fp32["p_value"] < 1e-6 and fp32["effect"] > 0.9, fp32
    assert {p["verdict"] for p in pairs.values()} == {"removed"}  # the candidate ran one model only
    for fmt, needle in (("md", "| **slower** |"), ("html", "class='verdict-slower'"), ("csv", ",slower,"),
                        ("table", "slower")):
        result = run_cli("report", candidate, "--baseline", baseline, "--format", fmt, "--reports", str(reports))
        assert result.exit_code == 0 and needle in result.stdout, (fmt, result.stdout[-2000:])


def test_history_lists_both_runs_and_the_trend_rises(with_slower_run, run_cli):
    reports, baseline, candidate = with_slower_run
    runs = report_json(run_cli, reports, "history")["runs"]
    assert [(r["run_id"], r["command"], r["ok"]) for r in runs] == [(baseline, "demo", len(DEFAULT_VARIANTS)), (candidate, "run", 1)]
    (trend,) = report_json(run_cli, reports, "history", "--trend", "p90", "--model", "demo-detector",
                           "--variant", "fp32", "--device", "local")["trends"]
    first, second = trend["points"]
    assert second["value"] > 5 * first["value"] and second["vs_previous"] > 5
    html = (reports / candidate / "report.html").read_text()
    assert "p50 latency across runs on local" in html  # the run's own report draws the trend


def test_variant_vs_variant_inside_the_demo_run(demo_run, run_cli):
    reports, run_dir, _ = demo_run
    report = report_json(run_cli, reports, "report", run_dir.name, "--versus", "variants")
    verdicts = {p["variant"]: p["verdict"] for p in report["pairs"]}
    assert report["kind"] == "variants" and verdicts["int16x8"] == "slower" and "fp32" not in verdicts


def test_pytest_benchmark_compare_reads_the_exported_runs(with_slower_run, run_cli, tmp_path):
    reports, baseline, candidate = with_slower_run
    files = []
    for run in (baseline, candidate):
        out = tmp_path / f"{run}.json"
        assert run_cli("report", run, "--format", "benchmark-json", "--out", str(out), "--reports", str(reports)).exit_code == 0
        files.append(str(out))
    tool = Path(sys.executable).with_name("pytest-benchmark")
    proc = subprocess.run([str(tool), "compare", *files], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, COLUMNS="240"))
    assert proc.returncode == 0, proc.stderr
    assert "Failed to load" not in proc.stdout + proc.stderr
    assert "benchmark 'demo-detector on local'" in proc.stdout
    for variant in DEFAULT_VARIANTS:
        assert f"demo-detector[local-{variant}]" in proc.stdout, variant


def test_what_to_ship_is_in_every_format_and_the_gate_asserts_it(demo_run, run_cli, tmp_path):
    """Issue 16, item 5: the answer per device in terminal, Markdown, HTML and
    JSON; a `ship:` rule passes on it and fails (exit 1, naming device,
    expected, actual and why) under a budget that rules the shipped one out."""
    from html import escape

    from harness.report.view import md_cell

    reports, run_dir, proc = demo_run
    env = {"HARNESS_REPORTS": str(reports)}
    results = json.loads((run_dir / "results.json").read_text())
    devices = {r["device"]["name"] for r in results["records"]}
    answers = {a["device"]: a for a in results["ship"]}
    assert set(answers) == devices and all(a["variant"] in DEFAULT_VARIANTS for a in answers.values())
    md, html = (run_dir / "report.md").read_text(), (run_dir / "report.html").read_text()
    narrow = run_cli("report", "latest", env={**env, "COLUMNS": "80"})
    for device, answer in answers.items():
        headline = f"ship {answer['variant']} on {device}: "
        assert headline in proc.stdout and headline in md and escape(headline) in html and headline in narrow.stdout
        assert f"runner-up {answer['runner_up']}" in md and md_cell(answer["bounds"]) in md
        assert len(answer["ruled_out"]) == len(DEFAULT_VARIANTS) - 2  # every other variant, with its reason
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80
    as_json = json.loads(run_cli("report", "latest", "--format", "json", env=env).stdout)
    assert {(r["device"]["name"], r["ship"]["device_ships"]) for r in as_json} == {(d, a["variant"]) for d, a in answers.items()}
    assert sorted(r["ship"]["verdict"] for r in as_json).count("ship") == len(devices)

    # A budgets file with only ship rules bounds nothing: the fastest p90 ships.
    def answer_with(budgets_text: str) -> dict[str, str]:
        path = tmp_path / f"budgets-{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text(budgets_text)
        result = run_cli("report", "latest", "--budgets", str(path), "--format", "json", env=env)
        assert result.exit_code == 0, result.stderr
        return {r["device"]["name"]: r["ship"]["device_ships"] for r in json.loads(result.stdout)}, path

    probe, _ = answer_with("budgets:\n  - name: probe\n    p50_ms: 1000000\n")
    (device, fastest), = probe.items()
    rule = f"budgets:\n  - name: ship-{fastest}\n    match: {{device: {device}}}\n    ship: {fastest}\n"
    _, ship_only = answer_with(rule)
    passed = run_cli("gate", "--budgets", str(ship_only), "--format", "json", env=env)
    assert passed.exit_code == 0, passed.stdout + passed.stderr
    (check,) = json.loads(passed.stdout)["checks"]
    assert (check["metric"], check["outcome"], check["variant"]) == ("ship", "pass", fastest)

    # Rule the fastest out with a p90 bound far under its interval: the answer moves, the ship rule fails.
    (shipped,) = [r for r in results["records"] if r["model"]["variant"] == fastest and r["device"]["name"] == device]
    tight = rule + f"  - name: tight\n    match: {{variant: {fastest}}}\n    p90_ms: {shipped['latency_ms']['p90_ci'][0] / 2:.4f}\n"
    moved, tight_file = answer_with(tight)
    assert moved[device] not in (fastest, None)
    failed = run_cli("gate", "--budgets", str(tight_file), "--format", "json", "--junit", str(tmp_path / "g.xml"), env=env)
    assert failed.exit_code == 1
    (ship_check,) = [c for c in json.loads(failed.stdout)["checks"] if c["metric"] == "ship"]
    assert ship_check["outcome"] == "fail"
    assert f"on {device}/demo-detector: expected to ship {fastest}, the answer is {moved[device]}" in ship_check["message"]
    assert f"{fastest} is ruled out: too slow (p90" in ship_check["message"]
    assert f"expected to ship {fastest}" in (tmp_path / "g.xml").read_text()
    table = run_cli("gate", "--budgets", str(tight_file), env={**env, "COLUMNS": "80"})
    assert table.exit_code == 1 and f"expected to ship {fastest}" in table.stdout
