"""Reports, comparisons and history from a store built in the test (no
device): pure logic, escaping, the CLI's error paths. The real-measurement
and real-browser checks are in tests/integration/test_reports.py."""

from __future__ import annotations

import json
import re
import typing
from dataclasses import replace
from html import unescape

import pytest

from harness.cli import TREND_METRICS, main
from harness.errors import InputError
from harness.report import charts, compare, history, layout, pareto
from harness.report.benchmark_json import render_benchmark_json, stats_s
from harness.report.compare_render import COLUMNS, render_html as render_comparison_html, render_markdown
from harness.report.compare_render import render_json as render_comparison_json
from harness.report.context import load_context
from harness.report.html import render_html
from harness.report.page import script
from harness.report.write import render
from harness.results.record import DeviceInfo, ModelInfo
from harness.results.store import RunInfo, SqliteStore
from tests.store_records import make_record, samples_ns

HOSTILE = "<script>document.title='pwned'</script>\"'|x"


SHA = "0123456789abcdef0123456789abcdef01234567"


def fill(store: SqliteStore, run_id: str, when: str, latency_ms: dict[tuple[str, str], float], model: str = "demo",
         commit: str | None = None) -> None:
    store.begin_run(RunInfo(run_id, when, "0.1.0", "finished", "run", "/tmp", source_commit=commit, host="ci-7"))
    for (device, variant), ms in latency_ms.items():
        base = make_record(run_id=run_id, variant=variant)
        record = replace(base, device=replace(base.device, name=device), model=replace(base.model, name=model),
                         latency_ms=replace(base.latency_ms, p50=ms, p90=ms * 1.04))
        store.add_record(record, samples_ns(ms))


@pytest.fixture
def store(tmp_path):
    with SqliteStore(tmp_path / "results.sqlite") as s:
        fill(s, "r1", "2026-01-01T00:00:00Z", {("local", "fp32"): 2.0, ("local", "int8"): 1.0})
        fill(s, "r2", "2026-01-02T00:00:00Z", {("local", "fp32"): 2.0, ("local", "int8"): 1.5, ("pi", "fp32"): 9.0},
             commit=SHA)
        yield s


def test_pareto_front_keeps_only_undominated_variants():
    pts = [pareto.TradeOff("fp32", 2.0, 0.36), pareto.TradeOff("int8", 1.0, 0.35),
           pareto.TradeOff("fp16", 2.1, 0.36), pareto.TradeOff("int16x8", 50.0, 0.36)]
    assert [p.variant for p in pareto.pareto_front(pts)] == ["int8", "fp32"]


def test_benchmark_stats_match_pytest_benchmarks_own_definitions():
    from pytest_benchmark.stats import Stats

    for n in (1, 2, 7, 9, 10, 401):
        ms = [v / 1e6 for v in samples_ns(3.0, n)] + ([40.0] if n > 2 else [])  # one far outlier
        ours, theirs = stats_s(ms), Stats()
        for v in ms:
            theirs.update(v / 1e3)
        for field in Stats.fields:
            expected = getattr(theirs, field)
            assert ours[field] == (pytest.approx(expected) if isinstance(expected, float) else expected), (n, field)


def test_history_counts_pairs_and_trends_stop_at_the_asked_run(store):
    runs = history.run_summaries(store)
    assert [(r.run_id, r.ok, r.devices) for r in runs] == [("r1", 2, ("local",)), ("r2", 3, ("local", "pi"))]
    (trend,) = history.trends(store, "p50", device="local", variant="int8")
    assert [p.value for p in trend.points] == [1.0, 1.5]
    assert [len(t.points) for t in history.trends(store, "p50", until_run="r1")] == [1, 1]
    with pytest.raises(InputError) as info:
        history.require_trends(history.trends(store, "p50", model="nope"), store, device="*", model="nope", variant="*")
    assert "models: demo" in info.value.render() and info.value.exit_code == 2


# What each --trend metric is, read from a record: the summary columns must
# give exactly these (they replaced re-reading every record for a trend).
RECORD_VALUES = {
    "p50": (lambda r: r.latency_ms.p50, lambda r: r.latency_ms.p50_ci),
    "p90": (lambda r: r.latency_ms.p90, lambda r: r.latency_ms.p90_ci),
    "p99": (lambda r: r.latency_ms.p99, lambda r: r.latency_ms.p99_ci),
    "mean": (lambda r: r.latency_ms.mean, lambda r: None),
    "peak_mb": (lambda r: r.memory_mb.peak, lambda r: None),
    "size_mb": (lambda r: r.model.size_bytes / 1e6 if r.model.size_bytes else None, lambda r: None),
    "map": (lambda r: r.accuracy.map, lambda r: None),
    "map50": (lambda r: r.accuracy.map50, lambda r: None),
    "load_ms": (lambda r: r.load_ms, lambda r: None),
}


def test_every_trend_metric_from_the_columns_is_the_records_own_value(store):
    base = make_record(run_id="r2", variant="uint8")
    store.add_record(replace(base, model=replace(base.model, size_bytes=0),
                             latency_ms=replace(base.latency_ms, p90_ci=None, p99_ci=(2.5, 3.5))), [1])
    store.add_record(make_record(run_id="r2", variant="int16x8", status="failed"), [])
    assert set(RECORD_VALUES) == set(history.METRICS) == set(TREND_METRICS)  # the CLI's --trend choices
    records = {(r.run_id, r.key): r for run in ("r1", "r2") for r in store.records(run)}
    for metric, (value, ci) in RECORD_VALUES.items():
        points = [(t.key, p) for t in history.trends(store, metric) for p in t.points]
        assert len(points) == len(records) == 7, metric
        for key, point in points:
            record = records[point.run_id, key]
            ok = record.status == "ok"
            assert (point.status, point.value, point.ci) == (
                record.status, value(record) if ok else None, ci(record) if ok else None), (metric, key)


def test_comparisons_between_runs_variants_and_devices(store):
    same = compare.run_comparison(store, "r2", "r2")
    assert {r.verdict for r in same.rows} == {"same"}
    runs = {(r.device, r.variant): r for r in compare.run_comparison(store, "r1", "r2").rows}
    assert runs["local", "int8"].verdict == "slower" and runs["local", "int8"].ratio == pytest.approx(1.5, rel=0.02)
    assert runs["local", "fp32"].verdict == "same" and runs["pi", "fp32"].verdict == "added"
    variants = compare.compare_variants(store, "r2")
    assert [(r.device, r.variant, r.verdict, r.against) for r in variants.rows] == [("local", "int8", "faster", "fp32")]
    devices = compare.compare_devices(store, "r2", "local")
    assert [(r.device, r.variant, r.verdict) for r in devices.rows] == [("pi", "fp32", "slower")]
    with pytest.raises(InputError) as info:
        compare.compare_devices(store, "r2", "nope")
    assert "pass one of: local, pi" in info.value.render()


def test_a_reference_pairs_samples_are_read_once_for_every_comparison_with_it(tmp_path):
    """A 200-pair run's report compared each variant with fp32 reading fp32's
    samples again each time; the rows are the same reading them once."""
    store = SqliteStore(tmp_path / "results.sqlite")
    fill(store, "r2", "2026-01-02T00:00:00Z", {(device, variant): ms * (4 if device == "pi" else 1)
                                                for device in ("local", "pi")
                                                for variant, ms in (("fp32", 2.0), ("int8", 1.5), ("fp16", 2.1))})
    reads: list[tuple[str, ...]] = []

    class Counting:
        def records(self, run_id):
            return store.records(run_id)

        def samples_ns(self, run_id, *key):
            reads.append((run_id, *key))
            return store.samples_ns(run_id, *key)

    for name, compared in (("variants", lambda s: compare.compare_variants(s, "r2")),
                           ("devices", lambda s: compare.compare_devices(s, "r2", "local"))):
        reads.clear()
        assert compared(Counting()) == compared(store), name
        assert len(reads) == len(set(reads)) > 0, (name, reads)
    store.close()


def test_html_report_has_every_chart_and_the_trend(store):
    records = store.records("r2")
    html = render_html(records, title="t", context=load_context(store, "r2", records))
    for label in ("latency distribution per variant on local", "peak resident memory", "model size",
                  "latency vs mAP on local", "p50 latency across runs on local", "Each variant vs fp32 on local",
                  "Device vs device"):
        assert label in html, label
    assert html.count("class='variant-toggle'") == 2 and "data-variant='int8'" in html


def test_every_table_says_a_speed_up_as_n_times_faster_and_the_data_keeps_the_ratio(store, tmp_path, capsys):
    """r1: int8 runs in half fp32's time. Every table says "2.00x faster"
    (never "0.50x faster"); json and csv keep the ratio 0.5."""
    records = store.records("r1")
    context = load_context(store, "r1", records)
    tables = {fmt: render(records, fmt, title="t", context=context) for fmt in ("md", "html")}
    variants = compare.compare_variants(store, "r1")
    tables["comparison md"] = render_markdown(variants)
    tables["comparison html"] = render_comparison_html(variants)
    for argv in (("report", "r1"), ("report", "r1", "--versus", "variants"), ("report", "r2", "--baseline", "r1")):
        code, out, _ = cli(tmp_path, capsys, *argv)
        assert code == 0
        tables[" ".join(argv)] = out
    for name, text in tables.items():
        assert not re.search(r"\b0\.\d+x", text), (name, text)
        assert ("1.50x slower" if "--baseline" in name else "2.00x faster") in text, (name, text)
    (pair,) = json.loads(render_comparison_json(variants))["pairs"]
    assert pair["ratio"] == pytest.approx(0.5, rel=0.02)
    assert render(records, "csv", title="t").splitlines()[2].split(",")[9] == "0.5"


def test_the_layout_decides_the_blocks_and_every_renderer_follows_it(store):
    records = store.records("r2")
    context = load_context(store, "r2", records)
    report = layout.run_report(records, title="t", context=context)
    kinds = [(type(b).__name__, getattr(getattr(b, "section", None), "device", None)) for b in report.blocks()]
    assert kinds == [
        ("GroupHeading", None), ("SectionHeading", "local"), ("ResultsTable", "local"), ("Ship", "local"),
        ("Charts", "local"), ("Comparison", None), ("TrendBlock", "local"), ("SectionHeading", "pi"),
        ("ResultsTable", "pi"), ("Ship", "pi"), ("Charts", "pi"), ("Comparison", None), ("Note", None),
    ]
    # Markdown and HTML say the same headings in the same order: neither decides the structure.
    md, html = render(records, "md", title="t", context=context), render(records, "html", title="t", context=context)
    headings = ["demo on local", "Each variant vs fp32 on local", "across runs on", "demo on pi",
                "Device vs device (same variant"]
    for text in (md, unescape(html)):
        positions = [text.find(h) for h in headings]
        assert -1 not in positions and positions == sorted(positions), (headings, positions)


def test_every_block_kind_has_a_method_in_every_renderer():
    from harness.report.markdown import MarkdownFormatter
    from harness.report.html import HtmlFormatter
    from harness.report.terminal import TerminalFormatter

    assert set(typing.get_args(layout.Block)) == set(layout.FORMATTER_METHODS)
    for method in layout.FORMATTER_METHODS.values():
        assert hasattr(layout.Formatter, method), method
        for renderer in (MarkdownFormatter, HtmlFormatter, TerminalFormatter):
            assert callable(getattr(renderer, method, None)), (renderer, method)


def test_report_js_never_closes_its_script_element():
    assert "</" not in script()


def hostile_store(tmp_path) -> SqliteStore:
    s = SqliteStore(tmp_path / "hostile.sqlite")
    s.begin_run(RunInfo("h1", "2026-01-01T00:00:00Z", "0.1.0", "finished", "run", "/tmp"))
    for variant in ("fp32", HOSTILE):
        base = make_record(run_id="h1", variant=variant)
        s.add_record(replace(base, device=DeviceInfo(HOSTILE, "x86-cpu"), model=ModelInfo(HOSTILE, variant, size_bytes=1000)),
                     samples_ns(2.0 if variant == "fp32" else 4.0))
    return s


def test_every_html_and_markdown_form_escapes_user_names(tmp_path):
    s = hostile_store(tmp_path)
    records = s.records("h1")
    run_html = render_html(records, title=HOSTILE, context=load_context(s, "h1", records))
    cmp = compare.compare_variants(s, "h1")
    for html in (run_html, render_comparison_html(cmp)):
        assert html.count("<script>") == 1 and "document.title='pwned'</script>" not in html
        assert "<script>document" not in html and "'pwned'" not in html
        # Every attribute value stays one attribute: no quote from user text survives unescaped.
        for value in re.findall(r"data-(?:tip|variant)='([^']*)'", html):
            assert "<" not in value and '"' not in value
        assert HOSTILE in unescape(html)
    md = render_markdown(cmp)
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert "<script>" not in md and rows
    for line in rows:
        assert len(re.findall(r"(?<!\\)\|", line)) == len(COLUMNS) + 1, line


def test_benchmark_json_lists_measured_pairs_and_names_the_rest(store):
    records = store.records("r1")
    failed = replace(records[0], model=replace(records[0].model, variant="uint8"), status="failed")
    ctx = load_context(store, "r1", records)
    doc = json.loads(render_benchmark_json("r1", "2026-01-01T00:00:00Z", [*records, failed], ctx.samples_ms))
    assert [b["name"] for b in doc["benchmarks"]] == ["demo[local-fp32]", "demo[local-int8]"]
    assert doc["benchmarks"][0]["stats"]["median"] == pytest.approx(0.002, rel=0.05)
    assert doc["edge_harness"]["not_measured"][0]["variant"] == "uint8"


def cli(tmp_path, capsys, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--reports", str(tmp_path)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_history_command_lists_runs_and_trends(store, tmp_path, capsys):
    code, out, _ = cli(tmp_path, capsys, "history", "--format", "json")
    runs = json.loads(out)["runs"]
    assert code == 0 and [(r["run_id"], r["source_commit"], r["host"]) for r in runs] == [
        ("r1", None, "ci-7"), ("r2", SHA, "ci-7")]
    code, out, _ = cli(tmp_path, capsys, "history", "--trend", "p90", "--model", "demo", "--variant", "int8",
                       "--device", "local", "--format", "csv")
    assert code == 0 and out.splitlines()[1:] == [
        "local,demo,int8,p90,r1,2026-01-01T00:00:00Z,,ok,1.04,1.5,3.0,",
        f"local,demo,int8,p90,r2,2026-01-02T00:00:00Z,{SHA},ok,{1.5 * 1.04},1.5,3.0,1.5",
    ]
    # Tables show the commit as git does: 12 characters of a full SHA.
    code, out, _ = cli(tmp_path, capsys, "history", "--trend", "p90", "--variant", "int8", "--device", "local",
                       "--format", "md")
    assert code == 0 and f"| {SHA[:12]} |" in out and SHA not in out


@pytest.mark.parametrize(("argv", "names"), [
    (("history", "--trend", "p90", "--model", "nope"), ("--trend", "models: demo")),
    (("history", "--model", "demo"), ("--model", "--trend")),
    (("report", "--versus", "variants", "--reference", "nope"), ("--reference", "fp32, int8")),
    (("report", "--baseline", "r1", "--versus", "devices"), ("--versus",)),
    (("report", "--reference", "fp32"), ("--reference", "--versus")),
    (("report", "--baseline", "r1", "--format", "benchmark-json"), ("--format", "pytest-benchmark compare")),
])
def test_bad_report_and_history_flags_exit_2_with_the_fix(store, tmp_path, capsys, argv, names):
    code, _, err = cli(tmp_path, capsys, *argv)
    assert code == 2 and "fix:" in err and "Traceback" not in err
    for name in names:
        assert name in err, err


@pytest.mark.parametrize("n_runs", [5, 30])
def test_trend_chart_labels_at_most_a_dozen_runs_and_always_the_last(n_runs):
    runs = [f"run-{i:02d}" for i in range(n_runs)]
    series = [charts.Series("fp32", "fp32", tuple((i, 1.0 + i / 10, f"tip {i}") for i in range(n_runs)))]
    svg = charts.trend_chart(series, runs, title="p50", unit="ms")
    labelled = [run for run in runs if f">{run}</text>" in svg]
    assert len(labelled) <= charts.MAX_RUN_LABELS + 1
    assert labelled[0] == runs[0] and labelled[-1] == runs[-1]
    assert svg.count("data-tip='tip ") == n_runs  # every run keeps its point and tooltip
    if n_runs <= charts.MAX_RUN_LABELS:
        assert labelled == runs
