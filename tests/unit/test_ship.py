"""The "what to ship" decision (harness/gate/ship.py): pure, on made records."""

from __future__ import annotations

import dataclasses
import json

from harness.gate.budgets import Budget, Match
from harness.gate.ship import MAP_TIE, decide_all, recipe_default_budgets, ship_checks
from harness.results.record import ErrorInfo, QuantizationInfo, Record
from tests.store_records import make_record


def rec(variant: str, p90_ms: float, map_: float, *, ci: float = 0.05, device: str = "rpi4-a",
        status: str = "ok", error: ErrorInfo | None = None) -> Record:
    """A record whose p90 interval is p90 +- ci (ms)."""
    r = make_record(variant=variant, device=device, status=status, map_=map_)
    latency = dataclasses.replace(r.latency_ms, p50=p90_ms * 0.9, p90=p90_ms, p90_ci=(p90_ms - ci, p90_ms + ci))
    return dataclasses.replace(r, latency_ms=latency, error=error)


def budget(name: str = "pis", **bounds: float) -> Budget:
    return Budget(name=name, match=Match(), where=f"budgets.yaml, budgets[0] ({name})", source="budgets.yaml", **bounds)


def fleet() -> list[Record]:
    return [
        rec("fp32", 7.2, 0.359),
        rec("int8", 3.1, 0.354),
        rec("uint8", 3.3, 0.353),
        rec("int16x8", 4.0, 0.340),
        rec("fp16", 6.0, 0.359),
    ]


def test_the_fastest_variant_that_meets_every_bound_ships_and_the_next_is_runner_up():
    (d,) = decide_all(fleet(), [budget(p90_ms=5, max_map_drop=0.01)])
    assert (d.device, d.model, d.variant, d.runner_up) == ("rpi4-a", "demo", "int8", "uint8")
    assert d.why == "fastest that meets every bound (p90 3.1 ms, mAP 0.354, drop 0.5 pt)"
    reasons = {r.variant: (r.reason, r.detail) for r in d.ruled_out}
    assert reasons["fp32"] == ("too slow", "p90 7.2 ms > 5 ms")
    assert reasons["fp16"] == ("too slow", "p90 6 ms > 5 ms")
    assert reasons["int16x8"] == ("too inaccurate", "drop 1.9 pt > 1.0 pt")
    assert set(reasons) == {"fp32", "fp16", "int16x8"}  # ship and runner-up are not ruled out
    assert d.sentence().startswith(
        "ship int8 on rpi4-a: fastest that meets every bound (p90 3.1 ms, mAP 0.354, drop 0.5 pt); runner-up uint8; "
        "ruled out: fp32 too slow (p90 7.2 ms > 5 ms)"
    )
    assert d.bounds == "the budgets file budgets.yaml"


def test_a_drop_equal_to_the_bound_meets_it_despite_float_rounding():
    assert 0.359 - 0.354 > 0.005  # binary floats
    (d,) = decide_all([rec("fp32", 7.2, 0.359), rec("int8", 3.1, 0.354)], [budget(max_map_drop=0.005)])
    assert d.variant == "int8"


def test_a_candidate_that_is_only_slower_is_ruled_out_as_slower():
    (d,) = decide_all(fleet(), [budget(max_map_drop=0.01)])
    assert (d.variant, d.runner_up) == ("int8", "uint8")
    slower = {r.variant: r for r in d.ruled_out if r.reason == "slower"}
    assert set(slower) == {"fp32", "fp16"} and "meets every bound" in slower["fp32"].detail


def test_rules_that_do_not_match_a_variant_do_not_bound_it():
    only_int8 = Budget(name="int8", match=Match(variant=("int8",)), where="b.yaml", p90_ms=1.0)
    (d,) = decide_all(fleet(), [only_int8])
    assert d.variant == "uint8"  # int8 is bounded and too slow; nothing bounds uint8
    assert d.verdict("int8") == ("ruled out", "too slow (p90 3.1 ms > 1 ms)")


def test_pairs_that_did_not_load_are_ruled_out_with_their_reason():
    records = [
        *fleet(),
        rec("dynamic-int8", 0, 0, status="skipped",
            error=ErrorInfo("unloadable", "this device runs ai-edge-litert 2.3.0, which cannot load dynamic-int8")),
        rec("edgetpu", 0, 0, status="skipped",
            error=ErrorInfo("compiler-missing", "edgetpu_compiler is not installed on this host")),
        rec("qat-int8", 0, 0, status="failed", error=ErrorInfo("agent", "Segmentation fault")),
    ]
    (d,) = decide_all(records, [budget(p90_ms=5)])
    reasons = {r.variant: (r.reason, r.detail) for r in d.ruled_out}
    assert reasons["dynamic-int8"][0] == "does not load"
    assert reasons["dynamic-int8"][1].startswith("on ai-edge-litert 2.3.0: skipped, unloadable: this device runs")
    assert reasons["edgetpu"] == ("cannot map to the Edge TPU", "edgetpu_compiler is not installed on this host")
    assert reasons["qat-int8"] == ("does not load", "on ai-edge-litert 2.3.0: failed, agent: Segmentation fault")
    assert d.variant == "int8"


def test_a_bound_inside_the_interval_rules_out_as_inconclusive():
    (d,) = decide_all([rec("fp32", 5.0, 0.36, ci=0.2), rec("int8", 5.6, 0.355)], [budget(p90_ms=5.1)])
    assert d.variant is None
    assert {r.variant: r.reason for r in d.ruled_out} == {"fp32": "inconclusive", "int8": "too slow"}
    assert "measure longer" in d.verdict("fp32")[1]


def test_several_failed_bounds_are_all_said():
    (d,) = decide_all(fleet(), [budget(p90_ms=5), budget("acc", max_map_drop=0.01, size_mb=0.001)])
    (int16,) = [r for r in d.ruled_out if r.variant == "int16x8"]
    assert int16.reason == "too big"  # the first failed bound, in the budget keys' order
    assert int16.detail.startswith("size 0.00 MB > 0.001 MB; too inaccurate: drop 1.9 pt > 1.0 pt")
    assert d.variant is None  # every variant is 1234 bytes > 0.001 MB


def test_overlapping_latency_and_a_real_accuracy_gain_ship_the_more_accurate():
    gain = MAP_TIE * 2
    records = [rec("fp32", 4.0, 0.36, ci=0.5), rec("int8", 3.0, 0.33, ci=0.3), rec("qat-int8", 3.2, 0.33 + gain, ci=0.3)]
    (d,) = decide_all(records, [budget(max_map_drop=0.05)])
    assert (d.variant, d.runner_up) == ("qat-int8", "int8")
    assert d.why.startswith("as fast as int8 within the p90 intervals and 1.0 pt more accurate")


def test_an_accuracy_difference_within_the_noise_is_a_tie_and_latency_decides():
    records = [rec("fp32", 4.0, 0.36), rec("int8", 3.0, 0.33, ci=0.3), rec("qat-int8", 3.2, 0.33 + MAP_TIE * 0.8, ci=0.3)]
    (d,) = decide_all(records, [budget(max_map_drop=0.05)])
    assert (d.variant, d.runner_up) == ("int8", "qat-int8")
    assert d.why.startswith("fastest that meets every bound")


def test_a_more_accurate_variant_that_is_measurably_slower_does_not_ship():
    records = [rec("fp32", 4.0, 0.36), rec("int8", 3.0, 0.33, ci=0.05), rec("qat-int8", 3.2, 0.35, ci=0.05)]
    (d,) = decide_all(records, [budget(max_map_drop=0.05)])
    assert d.variant == "int8"


def test_when_nothing_fits_the_answer_says_so_and_why():
    (d,) = decide_all(fleet(), [budget(p90_ms=1)])
    assert d.variant is None and d.runner_up is None
    assert d.headline() == "nothing to ship on rpi4-a: no variant meets every bound"
    assert len(d.ruled_out) == 5 and {r.reason for r in d.ruled_out} == {"too slow"}
    assert "ruled out: fp32 too slow (p90 7.2 ms > 1 ms)" in d.sentence()
    assert d.to_dict()["variant"] is None and d.to_dict()["answer"] == d.sentence()


def test_every_device_gets_its_own_answer():
    pi = fleet()
    x86 = [rec(v, ms / 3, m, device="x86-1") for v, ms, m in (("fp32", 2.0, 0.36), ("int8", 2.5, 0.354))]
    decisions = decide_all(pi + x86, [budget(max_map_drop=0.01)])
    assert [(d.device, d.variant) for d in decisions] == [("rpi4-a", "int8"), ("x86-1", "fp32")]


def test_without_budgets_the_recipe_max_map_drop_decides():
    selective = dataclasses.replace(rec("selective-int8", 3.0, 0.350),
                                    quantization=QuantizationInfo(selection={"max_map_drop": 0.003}))
    records = [*fleet(), selective]
    budgets, text = recipe_default_budgets(records)
    assert budgets[0].max_map_drop == 0.003 and "0.3 pt" in text
    (d,) = decide_all(records)
    # Every quantised variant loses more than 0.3 pt: fp16 (no loss) is the fastest left.
    assert (d.variant, d.runner_up) == ("fp16", "fp32") and d.bounds == text
    assert {r.variant: r.reason for r in d.ruled_out}["int8"] == "too inaccurate"
    (default,) = decide_all([rec("fp32", 7.2, 0.36), rec("int8", 3.1, 0.357), rec("uint8", 3.0, 0.35)])
    assert default.variant == "int8" and "0.5 pt" in default.bounds  # no selective record: 0.005


def test_each_model_of_a_run_gets_its_own_recipe_default():
    def model(name: str, drop: float | None) -> list[Record]:
        out = [dataclasses.replace(r, model=dataclasses.replace(r.model, name=name)) for r in
               (rec("fp32", 7.2, 0.360), rec("int8", 3.1, 0.352))]
        if drop is not None:
            out[1] = dataclasses.replace(out[1], quantization=QuantizationInfo(selection={"max_map_drop": drop}))
        return out

    strict, loose = decide_all([*model("strict", 0.005), *model("loose", 0.01)])
    assert (strict.model, strict.variant, loose.model, loose.variant) == ("strict", "fp32", "loose", "int8")
    assert "0.5 pt" in strict.bounds and "1.0 pt" in loose.bounds


def test_a_ship_rule_passes_on_the_answer_and_fails_naming_expected_actual_and_why():
    records = fleet()
    good = Budget(name="ship-int8", match=Match(device=("rpi4-*",)), where="b.yaml", ship="int8", p90_ms=5)
    decisions = decide_all(records, [good])
    (check,) = ship_checks(good, decisions, records)
    assert (check.outcome, check.metric, check.variant, check.measured) == ("pass", "ship", "int8", "ship int8")
    tight = Budget(name="ship-int8", match=Match(), where="b.yaml", ship="int8", max_map_drop=0.003)
    decisions = decide_all(records, [tight])
    (check,) = ship_checks(tight, decisions, records)
    assert check.outcome == "fail" and check.measured == "ship fp16"
    assert "on rpi4-a/demo: expected to ship int8, the answer is fp16" in check.message
    assert "int8 is ruled out: too inaccurate (drop 0.5 pt > 0.3 pt)" in check.message
    nothing = Budget(name="ship-int8", match=Match(), where="b.yaml", ship="int8", p90_ms=1)
    (check,) = ship_checks(nothing, decide_all(records, [nothing]), records)
    assert check.outcome == "fail" and check.measured == "nothing to ship" and "the answer is nothing" in check.message
    other = Budget(name="elsewhere", match=Match(device=("x86-*",)), where="b.yaml", ship="int8")
    assert ship_checks(other, decisions, []) == []


# -- the answer in the reports ----------------------------------------------


def test_every_renderer_says_the_answer_and_html_escapes_the_device_name():
    import io

    from rich.console import Console

    from harness.report.context import ReportContext
    from harness.report.write import render
    from harness.report.terminal import render_terminal
    from harness.report.view import md_cell

    hostile = "<b>pi</b>"
    records = [rec(v, ms, m, device=hostile) for v, ms, m in (("fp32", 7.2, 0.359), ("int8", 3.1, 0.354),
                                                              ("uint8", 3.3, 0.353))]
    context = ReportContext(budgets=[budget(p90_ms=5)])
    headline = f"ship int8 on {hostile}: fastest that meets every bound (p90 3.1 ms, mAP 0.354, drop 0.5 pt)"
    md = render(records, "md", title="t", context=context)
    assert md_cell(headline) in md and "- runner-up uint8" in md and "ruled out: fp32 too slow (p90 7.2 ms > 5 ms)" in md
    html = render(records, "html", title="t", context=context)
    assert "<b>pi</b>" not in html and "ship int8 on &lt;b&gt;pi&lt;/b&gt;" in html
    out = io.StringIO()
    render_terminal(records, Console(file=out, width=80), title="t", context=context)
    text = out.getvalue()
    assert "ship int8 on <b>pi</b>:" in text and "ruled out: fp32 too slow" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    as_json = json.loads(render(records, "json", title="t", context=context))
    assert [(r["model"]["variant"], r["ship"]["verdict"]) for r in as_json] == [
        ("fp32", "ruled out"), ("int8", "ship"), ("uint8", "runner-up")]
    assert {r["ship"]["device_ships"] for r in as_json} == {"int8"}
    bench = json.loads(render(records, "benchmark-json", title="t", context=context))
    assert bench["edge_harness"]["ship"][0]["variant"] == "int8"


def test_results_json_carries_a_ship_object_per_device(tmp_path):
    from harness.results.files import read_results, write_results

    records = [*fleet(), *[rec(v, ms, m, device="x86-1") for v, ms, m in (("fp32", 2.0, 0.36), ("int8", 2.5, 0.358))]]
    path = write_results(tmp_path, "r1", records, {})
    ship = json.loads(path.read_text())["ship"]
    assert [(s["device"], s["model"], s["variant"]) for s in ship] == [("rpi4-a", "demo", "int8"), ("x86-1", "demo", "fp32")]
    assert ship[0]["answer"].startswith("ship int8 on rpi4-a: fastest that meets every bound")
    assert len(read_results(path)) == len(records)  # the records read back as before


def test_report_budgets_recomputes_the_answer_and_refuses_bad_input(tmp_path, capsys):
    from harness.cli import main
    from harness.results.store import RunInfo, SqliteStore

    with SqliteStore(tmp_path / "results.sqlite") as store:
        store.begin_run(RunInfo("r1", "2026-01-01T00:00:00Z", "0.1.0", "finished", "run", "/tmp"))
        for r in fleet():
            store.add_record(dataclasses.replace(r, run_id="r1"))
    budgets = tmp_path / "b.yaml"
    budgets.write_text("budgets:\n  - name: fast\n    p90_ms: 3.2\n")
    code = main(["report", "r1", "--budgets", str(budgets), "--format", "md", "--reports", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "ship int8 on rpi4-a" in out and "runner-up" not in out and f"the budgets file {budgets}" in out
    code = main(["report", "r1", "--format", "md", "--reports", str(tmp_path)])
    assert code == 0 and "recipe's defaults" in capsys.readouterr().out
    budgets.write_text("budgets:\n  - name: fast\n    ship: int9\n")
    assert main(["report", "r1", "--budgets", str(budgets), "--reports", str(tmp_path)]) == 2
    assert "did you mean 'int8'" in capsys.readouterr().err
    assert main(["report", "r1", "--budgets", str(budgets), "--baseline", "r1", "--reports", str(tmp_path)]) == 2


def test_an_int16_variant_ruled_out_for_speed_says_its_ops_run_on_reference_kernels():
    records = [rec("fp32", 7.2, 0.359), rec("selective-int8", 3.1, 0.356), rec("int8", 3.3, 0.355), rec("mixed-int16", 9.5, 0.357)]
    (d,) = decide_all(records, [budget(max_map_drop=0.01)])
    reasons = {r.variant: (r.reason, r.detail) for r in d.ruled_out}
    assert d.variant == "selective-int8"
    assert reasons["mixed-int16"] == ("slower", "p90 9.5 ms, meets every bound; its int16 ops run on the reference kernels, not XNNPACK")
    assert reasons["fp32"] == ("slower", "p90 7.2 ms, meets every bound")  # the note is for int16 variants only
    (bounded,) = decide_all(records, [budget(p90_ms=5, max_map_drop=0.01)])
    assert {r.variant: r.reason for r in bounded.ruled_out}["mixed-int16"] == "too slow"
    assert "reference kernels" in bounded.verdict("mixed-int16")[1]
