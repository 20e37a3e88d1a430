"""Gate decisions on known samples: the interval rule, mAP bounds, the
regression test, unmatched rules, and the JUnit file."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from harness.gate.budgets import Budget, Match
from harness.gate.checks import check_latency, check_map_drop, check_min_map, check_regression
from harness.gate.evaluate import evaluate
from harness.gate.junit import render_junit
from harness.gate.summary import render_gate_markdown
from harness.measure.stats import quantile_ci, summarize_ns
from harness.results.record import Accuracy, ErrorInfo
from harness.results.store import RunInfo, SqliteStore
from harness.results.record import utc_now_iso
from tests.store_records import make_record


def samples_ms(center: float, n: int = 400, spread: float = 0.05, seed: int = 1) -> list[int]:
    rng = random.Random(seed)
    return [int(center * (1 + rng.uniform(-spread, spread)) * 1e6) for _ in range(n)]


def p90_interval(samples_ns):
    return quantile_ci(sorted(v / 1e6 for v in samples_ns), 0.9)


def test_latency_bound_is_judged_on_the_interval():
    record = make_record()
    ns = samples_ms(10.0)
    lo, hi = p90_interval(ns)
    above = check_latency("r", record, ns, "p90", hi * 1.5)
    below = check_latency("r", record, ns, "p90", lo * 0.5)
    inside = check_latency("r", record, ns, "p90", (lo + hi) / 2)
    assert (above.outcome, below.outcome, inside.outcome) == ("pass", "fail", "inconclusive")
    assert "measure longer" in inside.message
    # The failure names the rule, the pair, the bound and the interval.
    assert "'r' FAILS on local/demo/fp32" in below.message
    assert f"<= {lo * 0.5:g} ms" in below.message and f"[{lo:.3f}, {hi:.3f}]" in below.message


def test_the_raw_samples_and_the_record_give_one_interval():
    """The gate remakes the summary with the function that made the record's."""
    ns = samples_ms(10.0)
    record = replace(make_record(), latency_ms=summarize_ns(ns))
    for bound in (9.0, 10.4, 12.0):
        from_samples, from_record = check_latency("r", record, ns, "p90", bound), check_latency("r", record, [], "p90", bound)
        assert (from_samples.outcome, from_samples.measured) == (from_record.outcome, from_record.measured)


def test_too_few_samples_for_an_interval_is_inconclusive_not_pass():
    check = check_latency("r", make_record(), samples_ms(1.0, n=20), "p99", 1000.0)
    assert check.outcome == "inconclusive" and "at least 662 samples" in check.message


def test_failed_pair_fails_and_skipped_pair_is_skipped():
    failed = replace(make_record(status="failed"), error=ErrorInfo("agent", "the agent crashed (SIGABRT)"))
    skipped = replace(make_record(status="skipped"), error=ErrorInfo("capability", "needs an Edge TPU"))
    assert check_latency("r", failed, [], "p90", 5).outcome == "fail"
    assert "SIGABRT" in check_latency("r", failed, [], "p90", 5).message
    assert check_latency("r", skipped, [], "p90", 5).outcome == "skipped"


def test_map_bounds():
    fp32 = make_record()  # mAP 0.5
    int8 = replace(make_record(variant="int8"), accuracy=Accuracy("val", "/a.json", "/d.json", 200, 0.48, 0.8, 0.6))
    assert check_map_drop("r", int8, fp32, 0.03).outcome == "pass"
    assert check_map_drop("r", int8, fp32, 0.01).outcome == "fail"
    assert check_map_drop("r", int8, None, 0.01).outcome == "fail"
    assert "include fp32 in --variants" in check_map_drop("r", int8, None, 0.01).message
    assert check_min_map("r", int8, 0.48).outcome == "pass"
    assert check_min_map("r", int8, 0.49).outcome == "fail"
    assert check_min_map("r", replace(int8, accuracy=None), 0.1).outcome == "fail"


def test_regression_needs_significance_and_size():
    record = make_record()
    base = samples_ms(10.0, seed=1)
    same = samples_ms(10.0, seed=2)
    slower = samples_ms(11.0, seed=3)  # +10%
    assert check_regression("r", record, record, base, same, 5).outcome == "pass"
    assert check_regression("r", record, record, base, slower, 5).outcome == "fail"
    assert check_regression("r", record, record, base, slower, 15).outcome == "pass"
    assert check_regression("r", record, None, [], slower, 5).outcome == "skipped"


@pytest.fixture
def store(tmp_path):
    store = SqliteStore(tmp_path / "results.sqlite")
    store.begin_run(RunInfo("r1", utc_now_iso(), "0.1.0", "running", "run", str(tmp_path)))
    store.add_record(make_record(), samples_ms(10.0))
    store.add_record(replace(make_record(variant="int8"), device=replace(make_record().device, tags=("x86",))), samples_ms(4.0))
    yield store
    store.close()


def budget(name: str, **bounds) -> Budget:
    match = bounds.pop("match", Match())
    return Budget(name=name, match=match, where=f"b.yaml, {name}", **bounds)


def test_evaluate_matches_rules_and_reports_unmatched(store):
    budgets = [
        budget("all-p90", p90_ms=20.0),
        budget("tagged", match=Match(tags=("x86",)), p90_ms=1.0, max_map_drop=0.5),
        budget("typo", match=Match(variant=("int9",)), p90_ms=1.0),
    ]
    result = evaluate(budgets, store, "r1")
    outcomes = {(c.rule, c.variant, c.metric): c.outcome for c in result.checks}
    assert outcomes == {
        ("all-p90", "fp32", "p90_ms"): "pass",
        ("all-p90", "int8", "p90_ms"): "pass",
        ("tagged", "int8", "p90_ms"): "fail",
        ("tagged", "int8", "max_map_drop"): "pass",
    }
    assert [u.rule for u in result.unmatched] == ["typo"] and "int9" in result.unmatched[0].message
    assert result.failed()


def test_junit_has_one_case_per_rule_and_pair_and_escapes_names(store):
    hostile = replace(make_record(variant="int8"), device=replace(make_record().device, name='<dev "x">&'))
    store.add_record(hostile, samples_ms(4.0))
    result = evaluate([budget("all", p90_ms=5.0, size_mb=1.0)], store, "r1")
    suite = ET.fromstring(render_junit(result))
    cases = suite.findall("testcase")
    assert sorted(c.get("name") for c in cases) == sorted(['<dev "x">&/demo/int8', "local/demo/fp32", "local/demo/int8"])
    assert suite.get("tests") == "3" and suite.get("failures") == "1"
    (failed,) = [c for c in cases if c.find("failure") is not None]
    assert failed.get("name") == "local/demo/fp32" and "p90_ms <= 5 ms" in failed.find("failure").get("message")
    markdown = render_gate_markdown(result, budgets="b.yaml")
    assert "&lt;dev" in markdown and "<dev" not in markdown


def test_gate_cli_decides_from_the_store_and_an_unwritable_junit_is_exit_2(store, tmp_path, capsys):
    from harness.cli import main

    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("budgets:\n  - name: p90\n    p90_ms: 50\n")
    reports = str(store.path.parent)
    assert main(["gate", "--budgets", str(budgets), "--reports", reports, "--junit", str(tmp_path / "out" / "g.xml")]) == 0
    assert ET.parse(tmp_path / "out" / "g.xml").getroot().get("tests") == "2"
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    code = main(["gate", "--budgets", str(budgets), "--reports", reports, "--junit", str(blocked / "g.xml")])
    err = capsys.readouterr().err
    assert code == 2 and f"{blocked / 'g.xml'}: cannot write" in err and "--junit" in err and "Traceback" not in err


def test_a_rule_that_checks_nothing_fails_like_one_that_matches_nothing(store):
    # Its only bound needs a baseline, and none is given: it vouches for nothing.
    result = evaluate([budget("p90", p90_ms=20.0), budget("regression", max_regression_pct=5.0)], store, "r1")
    assert [c.outcome for c in result.checks] == ["pass", "pass"] and not result.unmatched
    (idle,) = result.unchecked
    assert idle.rule == "regression" and "--baseline RUN_ID" in idle.message and "b.yaml, regression" in idle.message
    assert result.failed(inconclusive_fails=False)
    assert result.to_dict()["unchecked"][0]["rule"] == "regression"
    assert "1 rule(s) checked nothing" in render_gate_markdown(result, budgets="b.yaml")
    (case,) = [c for c in ET.fromstring(render_junit(result)).findall("testcase") if c.get("name") == "(nothing checked)"]
    assert case.get("classname") == "budgets.regression" and case.find("failure").get("type") == "unchecked"

    # With a baseline the same rule decides, and the gate rests on its checks.
    store.begin_run(RunInfo("r0", utc_now_iso(), "0.1.0", "finished", "run", "/tmp"))
    store.add_record(make_record(run_id="r0"), samples_ms(10.0, seed=7))
    result = evaluate([budget("regression", max_regression_pct=5.0)], store, "r1", baseline_run="r0")
    assert not result.unchecked and [c.outcome for c in result.checks] == ["pass", "skipped"]
    assert not result.failed()


def test_a_rule_whose_every_check_was_skipped_checks_nothing(store):
    skipped = replace(make_record(variant="edgetpu", status="skipped"), error=ErrorInfo("capability", "needs an Edge TPU"))
    store.add_record(skipped, [])
    result = evaluate([budget("tpu", match=Match(variant=("edgetpu",)), p90_ms=5.0), budget("all", p90_ms=50.0)], store, "r1")
    assert [u.rule for u in result.unchecked] == ["tpu"] and "needs an Edge TPU" in result.unchecked[0].message
    assert result.failed()  # "all" passes on the measured pairs and skips edgetpu: it checked something


def test_gate_cli_fails_a_budgets_file_whose_only_rule_cannot_be_checked(store, tmp_path, capsys):
    from harness.cli import main

    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("budgets:\n  - name: no-slower\n    max_regression_pct: 5\n")
    code = main(["gate", "--budgets", str(budgets), "--reports", str(store.path.parent)])
    out = capsys.readouterr().out
    assert code == 1 and "gate FAILED: no checks, 1 rule(s) checked nothing" in out
    assert "'no-slower' checked nothing" in out and "--baseline" in out


def test_one_budget_on_one_record_that_checks_nothing_is_refused(store):
    from harness.errors import InputError
    from harness.gate.evaluate import checks_for_record

    (record, _) = store.records("r1")
    with pytest.raises(InputError) as err:
        checks_for_record(budget("regression", max_regression_pct=5.0), store, record)
    assert "b.yaml, regression: the budget checks nothing" in err.value.render() and "baseline=RUN_ID" in err.value.render()
    checks = checks_for_record(budget("both", p90_ms=50.0, max_regression_pct=5.0), store, record)
    assert [c.metric for c in checks] == ["p90_ms"]  # the regression bound waits for a baseline, the rest is checked
