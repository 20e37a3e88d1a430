"""`harness gate` on a real measured run (the demo detector's fp32 as a bare
.tflite on `local`): bounds above, below and inside the measured p90
interval pass, fail and are inconclusive; the JUnit file and the Markdown
summary carry the rule, the pair, the interval and the bound; --remeasure
measures the undecided pair again, longer, into the same run."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import pytest

from harness.measure.stats import quantile_ci

pytestmark = pytest.mark.slow
COMMIT = "release-candidate-7"  # what $HARNESS_COMMIT says the run measured


@pytest.fixture(scope="module")
def measured(demo_artifacts, tmp_path_factory):
    """One real run; returns (reports dir, the env for the CLI, the p90 interval)."""
    import os
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("gate")
    model = root / "detector.tflite"
    shutil.copy(demo_artifacts["fp32"].path, model)
    env = dict(os.environ, HARNESS_REPORTS=str(root / "reports"), HARNESS_CACHE=str(root / "cache"), COLUMNS="200",
               HARNESS_COMMIT=COMMIT)
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--model", str(model)], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root, env


def test_the_run_records_the_commit_it_measured_and_where(measured, run_cli):
    import socket

    root, env = measured
    history = run_cli("history", "--format", "json", env=env)
    first = json.loads(history.stdout)["runs"][0]
    assert (first["source_commit"], first["host"]) == (COMMIT, socket.gethostname())
    report = run_cli("report", first["run_id"], "--format", "md", env=env)
    assert f"commit {COMMIT}" in report.stdout.splitlines()[0]


def stored_record(root):
    from harness.results.store import SqliteStore

    with SqliteStore(root / "reports" / "results.sqlite") as store:
        (record,) = store.records(store.resolve_run("latest"))
    return record


def p90_interval(root) -> tuple[float, float, int]:
    from harness.results.store import SqliteStore

    with SqliteStore(root / "reports" / "results.sqlite") as store:
        run = store.resolve_run("latest")
        ns = store.samples_ns(run, "local", "detector", "fp32")
    lo, hi = quantile_ci(sorted(v / 1e6 for v in ns), 0.9)
    return lo, hi, len(ns)


def gate(run_cli, root, env, bound_ms: float, *extra: str):
    budgets = root / f"budgets-{bound_ms}.yaml"
    budgets.write_text(f"budgets:\n  - name: fp32-p90\n    match: {{variant: fp32}}\n    p90_ms: {bound_ms}\n")
    junit, md = root / "gate.xml", root / "gate.md"
    result = run_cli("gate", "--budgets", str(budgets), "--junit", str(junit), "--markdown", str(md), *extra, env=env)
    return result, ET.parse(junit).getroot(), md.read_text()


def test_bounds_above_below_and_inside_the_interval(measured, run_cli):
    root, env = measured
    lo, hi, _ = p90_interval(root)

    passed, suite, _ = gate(run_cli, root, env, round(hi * 3, 3))
    assert passed.exit_code == 0, passed.stdout + passed.stderr
    assert "gate passed: 1 pass" in passed.stdout and suite.get("failures") == "0"

    bound = round(lo / 3, 4)
    failed, suite, md = gate(run_cli, root, env, bound)
    assert failed.exit_code == 1, failed.stdout + failed.stderr
    interval = f"[{lo:.3f}, {hi:.3f}]"
    message = f"budget 'fp32-p90' FAILS on local/detector/fp32: p90_ms <= {bound:g} ms; measured p90"
    assert message in failed.stdout and interval in failed.stdout
    (case,) = suite.findall("testcase")
    assert case.get("name") == "local/detector/fp32" and case.get("classname") == "budgets.fp32-p90"
    assert message in case.find("failure").get("message") and interval in case.find("failure").get("message")
    assert "FAIL | fp32-p90 | local | detector | fp32" in md and interval in md

    if hi - lo < 1e-3:
        pytest.skip(f"the p90 interval [{lo}, {hi}] is too narrow to put a bound inside it")
    inside, suite, _ = gate(run_cli, root, env, round((lo + hi) / 2, 4))
    assert inside.exit_code == 1, inside.stdout + inside.stderr
    assert "INCONCLUSIVE" in inside.stdout and "measure longer" in inside.stdout
    assert suite.find("testcase/failure").get("type") == "inconclusive"
    allowed, _, _ = gate(run_cli, root, env, round((lo + hi) / 2, 4), "--allow-inconclusive")
    assert allowed.exit_code == 0, allowed.stdout


def test_json_output_and_a_bad_budgets_file(measured, run_cli):
    root, env = measured
    budgets = root / "json.yaml"
    budgets.write_text("budgets:\n  - name: size\n    size_mb: 100\n  - name: nothing\n    match: {device: 'pi-*'}\n    p90_ms: 5\n")
    result = run_cli("gate", "--budgets", str(budgets), "--format", "json", env=env)
    data = json.loads(result.stdout)
    assert result.exit_code == 1 and data["passed"] is False
    assert data["counts"]["pass"] == 1 and [u["rule"] for u in data["unmatched"]] == ["nothing"]

    budgets.write_text("budgets:\n  - name: x\n    p90_ms: 5\n    p90_ms_typo: 1\n")
    bad = run_cli("gate", "--budgets", str(budgets), env=env)
    assert bad.exit_code == 2 and "Traceback" not in bad.stderr
    assert f"{budgets}, budgets[0] (x).p90_ms_typo: unknown key" in bad.stderr


def test_remeasure_measures_undecided_pairs_longer_in_the_same_run(measured, run_cli):
    root, env = measured
    lo, hi, n_before = p90_interval(root)
    created_before = stored_record(root).created_at
    result, _, _ = gate(run_cli, root, env, round((lo + hi) / 2, 4), "--remeasure")
    assert "re-measuring 1 inconclusive pair(s) 4x longer: local/detector/fp32" in result.stderr, result.stderr
    assert result.exit_code in (0, 1) and "Traceback" not in result.stderr
    from harness.fleet.profiles import load_profile, scaled_plan
    from harness.results.store import SqliteStore

    # Measured again with 4x the profile's minimums (the first measurement may
    # itself have run well past its minimum, so the count alone proves nothing):
    # at least 4x min_runs samples and 4x min_seconds inside invoke(), 15% slack
    # for the time the loop spends outside the timed window.
    plan = scaled_plan(load_profile("x86-cpu").measurement, 4.0)
    with SqliteStore(root / "reports" / "results.sqlite") as store:
        assert len(store.runs()) == 1
        run = store.resolve_run("latest")
        (record,) = store.records(run)  # replaced, not duplicated
        samples_ns = store.samples_ns(run, "local", "detector", "fp32")
        (first,) = store.superseded(run)  # the first measurement is kept, marked superseded
        first_ns = store.samples_ns(run, "local", "detector", "fp32", superseded_at=first.superseded_at)
    assert record.key == ("local", "detector", "fp32") and record.created_at > created_before
    assert len(samples_ns) >= plan.min_runs and sum(samples_ns) / 1e9 >= 0.85 * plan.min_seconds, (
        len(samples_ns), sum(samples_ns) / 1e9, n_before)
    assert (first.record.key, first.record.created_at, len(first_ns)) == (record.key, created_before, n_before)

    exported = root / "remeasured.jsonl"
    assert run_cli("store", "export", run, "--out", str(exported), env=env).exit_code == 0
    lines = [json.loads(line) for line in exported.read_text().splitlines()[2:]]
    assert [(e["record"]["created_at"], e["superseded_at"] is not None) for e in lines] == [
        (created_before, True), (record.created_at, False)]
    compared = run_cli("report", run, "--baseline", run, "--format", "json", env=env)
    (note,) = json.loads(compared.stdout)["notes"]  # which measurement the comparison used
    assert f"uses the re-measurement of {record.created_at}, not the superseded measurement of {created_before}" in note
