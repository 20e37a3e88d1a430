"""`harness history` and `harness history --trend` on an 80-column terminal:
every table fits by dropping or folding columns, never by truncating a
value with '…' (run ids, commits, statuses and device names stay whole)."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from rich.console import Console

from harness.cli import main
from harness.report import history, history_render
from harness.results.store import RunInfo, SqliteStore
from tests.store_records import make_record

SHA = "0123456789abcdef0123456789abcdef01234567"
DEVICES = ("local", "pi-lab-1", "coral-dev-1")
VARIANTS = ("fp32", "dynamic-int8", "selective-int8")
STATUSES = ("finished", "interrupted", "failed")


def run_id(n: int) -> str:
    return f"2026010{n % 9 + 1}-12000{n % 10}-ab{n:02d}"  # the shape of harness run ids


def quick_store(path) -> SqliteStore:
    store = SqliteStore(path)
    store._db.execute("PRAGMA synchronous = OFF")  # a test's writes need not wait for the disk
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with quick_store(tmp_path_factory.mktemp("history") / "results.sqlite") as s:
        for n in range(12):
            rid = run_id(n)
            s.begin_run(RunInfo(rid, f"2026-01-{n + 1:02d}T12:00:00Z", "0.1.0", "running", ("run", "demo", "gate")[n % 3],
                                "/r", source_commit=SHA if n % 2 else "v0.3.1-4-g0123456-dirty", host="ci-runner-7"))
            for device in DEVICES[: 1 + n % 3]:  # the runs differ in their devices
                for variant in VARIANTS:
                    status = "failed" if (n, variant) == (5, "selective-int8") else "ok"
                    s.add_record(make_record(rid, variant, status, device=device, p50_ms=12.3456 + n / 7), [1])
            s.finish_run(rid, STATUSES[n % 3])
        yield s


def rendered(*renderables, width: int = 80) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(*renderables)
    return out.getvalue()


def assert_fits(text: str, width: int = 80) -> None:
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= width, text


def test_the_run_list_fits_80_columns_and_keeps_every_key_value(store):
    text = rendered(history_render.runs_table(history.run_summaries(store)))
    assert_fits(text)
    for n in range(12):
        assert run_id(n) in text
    for value in (SHA[:12], *STATUSES, "9 (6/3/0)", *DEVICES):
        assert value in text, value
    assert "v0.3.1-4-g01" in text and "dirty" in text  # a long `git describe` folds, whole
    assert "command" in text and "120+ columns" in text  # what it dropped, and where to find it


def test_a_run_list_of_one_device_set_says_it_once(store, tmp_path):
    with quick_store(tmp_path / "one.sqlite") as one:
        for n in range(3):
            one.begin_run(RunInfo(run_id(n), f"2026-01-0{n + 1}T12:00:00Z", "0.1.0", "finished", "run", "/r"))
            one.add_record(make_record(run_id(n), device="pi-lab-2"), [1])
        text = rendered(history_render.runs_table(history.run_summaries(one)))
    assert_fits(text)
    assert text.count("pi-lab-2") == 1 and "devices: pi-lab-2 (every run)" in text


@pytest.mark.parametrize("metric", ["p90", "size_mb", "map"])
def test_a_trend_fits_80_columns_with_its_interval_and_failed_runs(store, metric):
    (trend,) = history.trends(store, metric, device="local", variant="selective-int8")
    text = rendered(*history_render.trend_tables([trend]))
    assert_fits(text)
    for n in range(12):
        assert run_id(n) in text
    assert "failed" in text and SHA[:12] in text  # run 5's pair failed: its status stands for the value
    if metric == "p90":
        assert "1.5–3" in text and "95% CI" in text  # the p90 interval, as one column
        assert "2.9" in text


def test_a_long_trend_keeps_its_sparkline_on_one_line(tmp_path):
    with quick_store(tmp_path / "long.sqlite") as s:
        for n in range(200):
            rid = f"20260101-{n // 60:02d}{n % 60:02d}00-ab{n:03d}"
            s.begin_run(RunInfo(rid, f"2026-01-01T{n // 60:02d}:{n % 60:02d}:00Z", "0.1.0", "finished", "run", "/r"))
            base = make_record(rid, "int8")
            s.add_record(replace(base, latency_ms=replace(base.latency_ms, p90=1.0 + n % 7)), [1])
        text = rendered(*history_render.trend_tables(history.trends(s, "p90")))
    assert_fits(text)
    title = text.splitlines()[0]
    assert title.startswith("p90 latency (ms) of demo int8 on local  last ") and "█" in title


def test_wide_terminals_keep_every_column(store):
    (trend,) = history.trends(store, "p90", device="local", variant="fp32")
    text = rendered(*history_render.trend_tables([trend]), width=160)
    assert all(h in text for h in history_render.TREND_COLUMNS)
    runs = rendered(history_render.runs_table(history.run_summaries(store)), width=160)
    assert all(h in runs for h in ("date (UTC)", "command", "devices")) and "2026-01-02 12:00" in runs


def test_history_command_tables_fit_an_80_column_terminal(store, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    for argv in (["history"], ["history", "--trend", "p90", "--device", "local"]):
        assert main([*argv, "--reports", str(store.path.parent)]) == 0
        out = capsys.readouterr().out
        assert_fits(out)
        assert run_id(11) in out
