"""The results store suite, run on both back ends: SQLite (a file in tmp) and
a real PostgreSQL server the tests start themselves (tests/pg.py)."""

from __future__ import annotations

import io
import json
import sqlite3
from array import array
from contextlib import closing
from dataclasses import replace

import pytest

from harness.errors import InputError
from harness.results.open import STORE_ENV, open_store
from harness.results.schema import MIGRATIONS, SAMPLE_BATCH, STORE_SCHEMA_VERSION, statements
from harness.results.store import RunInfo, SqliteStore
from harness.results.transfer import export_runs, import_runs
from harness.results.trend import METRICS
from harness.results.urls import url_password
from tests.store_records import make_record


@pytest.fixture
def opened(store_url, monkeypatch, tmp_path):
    """Open the store the way every command does: from $HARNESS_STORE."""
    monkeypatch.setenv(STORE_ENV, store_url)
    stores = []

    def open_():
        store = open_store(None, tmp_path / "unused-reports")
        stores.append(store)
        return store

    yield open_
    for store in stores:
        store.close()


def run_info(run_id: str, created_at: str = "2025-01-01T00:00:00Z") -> RunInfo:
    return RunInfo(run_id, created_at, "0.1.0", "running", "run", f"/runs/{run_id}")


def test_records_and_batched_samples_survive_reopening(opened):
    store = opened()
    store.begin_run(run_info("r1"))
    samples = list(range(1_000_000, 1_000_000 + 2 * SAMPLE_BATCH + 5))  # three batches
    records = [make_record("r1", "fp32"), make_record("r1", "int8", p50_ms=1.5)]
    store.add_record(records[0], iter(samples))  # a generator: nothing needs the whole list at once
    store.add_record(records[1], [7, 8])
    store.finish_run("r1", "finished")
    store.close()

    again = opened()
    assert again.records("r1") == records
    assert again.samples_ns("r1", "local", "demo", "fp32") == samples
    assert len(list(again.iter_sample_batches("r1", "local", "demo", "fp32"))) == 3
    assert again.samples_ns("r1", "local", "demo", "int8") == [7, 8]
    assert again.samples_ns("r1", "local", "demo", "uint8") == []
    info = again.run("r1")
    assert info.status == "finished" and info.finished_at and info.run_dir == "/runs/r1"


def test_measuring_a_pair_again_replaces_it_and_its_samples(opened):
    store = opened()
    store.begin_run(run_info("r1"))
    store.add_record(make_record(status="failed"), [])
    store.add_record(make_record(), [5] * (SAMPLE_BATCH + 1))
    store.add_record(make_record(), [5])
    assert [r.status for r in store.records("r1")] == ["ok"]
    assert store.samples_ns("r1", "local", "demo", "fp32") == [5]


def measured_at(record, when: str):
    return replace(record, created_at=when)


def test_a_remeasured_pair_keeps_its_first_record_and_samples_superseded(opened):
    store = opened()
    store.begin_run(run_info("r1"))
    first = measured_at(make_record(variant="int8", p50_ms=2.0), "2025-01-01T00:01:00Z")
    again = measured_at(make_record(variant="int8", p50_ms=2.4), "2025-01-01T00:09:00Z")
    store.add_record(first, [1, 2, 3])
    store.add_record(make_record(variant="fp32"), [9])
    store.add_record(measured_at(again, "2025-01-01T00:05:00Z"), [4], supersede=True)  # round 1 of the re-measurement
    store.add_record(again, [4, 5])  # its last round replaces round 1, not the first measurement
    assert [r.model.variant for r in store.records("r1")] == ["fp32", "int8"] and store.records("r1")[1] == again
    (old,) = store.superseded("r1")
    assert old.record == first and old.superseded_at >= "2025"
    assert store.samples_ns("r1", "local", "demo", "int8") == [4, 5]
    assert store.samples_ns("r1", "local", "demo", "int8", superseded_at=old.superseded_at) == [1, 2, 3]
    assert [p.value for p in store.trend("p50", variant="int8")] == [2.4]  # trends read the current record only
    assert [p.key for p in store.pairs()] == [("local", "demo", "fp32"), ("local", "demo", "int8")]
    store.close()
    reopened = opened()
    assert reopened.superseded("r1") == [old] and reopened.records("r1")[1] == again


def test_export_and_import_keep_superseded_records(opened, tmp_path):
    store = opened()
    store.begin_run(run_info("r1"))
    first = measured_at(make_record(variant="int8"), "2025-01-01T00:01:00Z")
    store.add_record(first, [1, 2, 3])
    store.add_record(measured_at(make_record(variant="int8", p50_ms=2.4), "2025-01-01T00:09:00Z"), [4, 5], supersede=True)
    exported = io.StringIO()
    assert export_runs(store, ["r1"], exported) == 2
    lines = [json.loads(line) for line in exported.getvalue().splitlines()]
    assert lines[0] == {"format": "edge-harness-runs", "version": 2}
    assert [(e["record"]["created_at"], e["superseded_at"] is not None, e["samples_ns"]) for e in lines[2:]] == [
        ("2025-01-01T00:01:00Z", True, [1, 2, 3]), ("2025-01-01T00:09:00Z", False, [4, 5])]
    with SqliteStore(tmp_path / "copy.sqlite") as copy:
        text = exported.getvalue().splitlines()
        assert import_runs(copy, tmp_path / "runs.jsonl", text).records_written == 2
        assert copy.superseded("r1") == store.superseded("r1") and copy.records("r1") == store.records("r1")
        old_at = copy.superseded("r1")[0].superseded_at
        assert copy.samples_ns("r1", "local", "demo", "int8", superseded_at=old_at) == [1, 2, 3]
        assert import_runs(copy, tmp_path / "runs.jsonl", text).records_written == 0  # idempotent
    assert import_runs(store, tmp_path / "runs.jsonl", text).records_written == 0
    assert len(store.superseded("r1")) == 1


def test_runs_resolve_latest_and_unknown_ids_are_input_errors(opened, store_url):
    store = opened()
    with pytest.raises(InputError, match="no runs recorded yet"):
        store.resolve_run("latest")
    store.begin_run(run_info("r1", "2025-01-01T00:00:00Z"))
    store.begin_run(run_info("r2", "2999-01-01T00:00:00Z"))
    assert [r.run_id for r in store.runs()] == ["r1", "r2"]
    assert store.resolve_run("latest") == store.resolve_run(None) == "r2"
    assert store.resolve_run("r1") == "r1"
    with pytest.raises(InputError, match="no run 'nope'") as err:
        store.resolve_run("nope")
    assert "r1, r2" in err.value.render()
    password = url_password(store_url)
    assert password is None or (password not in err.value.render() and "***" in err.value.render())


def test_resumed_run_is_reopened_then_finished(opened):
    store = opened()
    store.begin_run(run_info("r1"))
    store.finish_run("r1", "interrupted")
    store.reopen_run("r1")
    assert (store.run("r1").status, store.run("r1").finished_at) == ("running", None)
    store.finish_run("r1", "finished")
    assert store.run("r1").status == "finished"


def test_trend_lists_records_oldest_run_first_with_filters(opened):
    store = opened()
    for n, p50 in enumerate((2.0, 2.2, 2.6)):
        run_id = f"r{n}"
        store.begin_run(run_info(run_id, f"2025-01-0{n + 1}T00:00:00Z"))
        store.add_record(make_record(run_id, "int8", p50_ms=p50, map_=0.5 - n / 100), [1])
        store.add_record(make_record(run_id, "fp32", p50_ms=9.0), [1])
        store.add_record(make_record(run_id, "fp32", device="pi-5", status="failed"), [])
    series = store.trend("p50", device="local", variant="int8")
    assert [(p.run_id, p.value) for p in series] == [("r0", 2.0), ("r1", 2.2), ("r2", 2.6)]
    assert [p.value for p in store.trend("map", device="local", variant="int8")] == [0.5, 0.49, 0.48]
    first = {metric: store.trend(metric, device="local", variant="int8")[0] for metric in METRICS}
    assert series[0].created_at == "2025-01-01T00:00:00Z"
    assert {metric: point.value for metric, point in first.items()} == {
        "p50": 2.0, "p90": 2.9, "p99": 2.99, "mean": 2.0, "peak_mb": 70.0, "size_mb": 1234 / 1e6, "map": 0.5,
        "map50": 0.8, "load_ms": 1.5}
    assert (first["p50"].ci, first["p90"].ci, first["p99"].ci, first["mean"].ci) == ((1.0, 3.0), (1.5, 3.0), None, None)
    # Failed records are points of a trend without a value.
    assert len([p for p in store.trend("p50") if p.value is not None]) == 6
    assert [(p.status, p.value, p.ci) for p in store.trend("p90", device="pi-5")] == [("failed", None, None)] * 3
    assert {p.variant for p in store.trend("p50", model="demo")} == {"int8", "fp32"}
    assert [p.key for p in store.trend("p50", device="lo*", variant="int?")] == [("local", "demo", "int8")] * 3
    assert [p.run_id for p in store.trend("p50", device="local", variant="int8", until_run="r1")] == ["r0", "r1"]
    assert store.trend("p50", device="nope") == []


def test_importing_a_run_twice_writes_it_once(opened):
    store = opened()
    run = RunInfo("laptop-1", "2025-01-01T00:00:00Z", "0.1.0", "finished", "demo", "/laptop/r", "2025-01-01T00:05:00Z")
    items = [(make_record("laptop-1", "fp32"), [1, 2, 3]), (make_record("laptop-1", "int8"), [4])]
    assert store.import_run(run, iter(items)) == 2
    assert store.import_run(run, iter(items)) == 0
    changed = [(make_record("laptop-1", "int8", p50_ms=1.0), [9])]
    assert store.import_run(run, iter(changed)) == 1
    assert store.runs() == [run]
    assert [r.model.variant for r in store.records("laptop-1")] == ["fp32", "int8"]
    assert store.samples_ns("laptop-1", "local", "demo", "int8") == [9]


def _first_schema(url: str):
    """A raw connection holding the first schema (version 1), as old
    harness versions wrote it, with one run, one record and its samples."""
    if url.startswith("sqlite:///"):
        db = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
        mark = "?"
    else:
        import psycopg

        db = psycopg.connect(url, autocommit=True)
        mark = "%s"
    for statement in statements(MIGRATIONS[1][0], "sqlite" if mark == "?" else "postgresql"):
        db.execute(statement)
    if mark == "?":
        db.execute("PRAGMA user_version = 1")
    else:
        db.execute("CREATE TABLE harness_schema (version INTEGER NOT NULL)")
        db.execute("INSERT INTO harness_schema VALUES (1)")
    record = make_record("old", "int8", p50_ms=3.25)
    db.execute(f"INSERT INTO runs VALUES ({', '.join([mark] * 7)})",
               ("old", "2024-06-01T00:00:00Z", None, "0.0.9", "finished", "demo", "/old"))
    ((record_id,),) = db.execute(
        f"INSERT INTO records (run_id, device, model, variant, status, created_at, record_json)"
        f" VALUES ({', '.join([mark] * 7)}) RETURNING id",
        ("old", "local", "demo", "int8", "ok", record.created_at, json.dumps(record.to_dict())),
    ).fetchall()
    db.execute(f"INSERT INTO samples VALUES ({mark}, {mark})", (record_id, array("q", [11, 12, 13]).tobytes()))
    return db, record


def test_a_store_at_the_first_schema_is_migrated_on_open(store_url, opened):
    db, record = _first_schema(store_url)
    db.close()
    store = opened()
    assert store.records("old") == [record]
    old = store.run("old")
    assert old is not None and (old.command, old.source_commit, old.host) == ("demo", None, None)  # v3 columns: NULL
    assert store.samples_ns("old", "local", "demo", "int8") == [11, 12, 13]
    # Query columns filled from the old JSON: v2's and v4's.
    values = {metric: store.trend(metric, variant="int8") for metric in ("p50", "map", "size_mb", "p90", "mean", "load_ms")}
    assert {metric: [(p.run_id, p.value) for p in points] for metric, points in values.items()} == {
        "p50": [("old", 3.25)], "map": [("old", 0.5)], "size_mb": [("old", 1234 / 1e6)], "p90": [("old", 2.9)],
        "mean": [("old", 2.0)], "load_ms": [("old", 1.5)]}
    assert values["p90"][0].ci == (1.5, 3.0)
    store.add_record(make_record("old", "fp32"), [1, 2])  # and it takes new records
    assert [r.model.variant for r in store.records("old")] == ["int8", "fp32"]
    # v5: v1's one-record-per-pair rule now holds for current records only.
    store.add_record(measured_at(make_record("old", "int8", p50_ms=3.5), "2025-02-01T00:00:00Z"), [14], supersede=True)
    assert [s.record for s in store.superseded("old")] == [record]
    assert store.samples_ns("old", "local", "demo", "int8", superseded_at=store.superseded("old")[0].superseded_at) == [11, 12, 13]
    with pytest.raises(Exception, match="(?i)unique"):  # two current records of one pair: refused by the index
        store._insert_record(make_record("old", "int8"), [], None)
    store.close()
    assert opened().samples_ns("old", "local", "demo", "fp32") == [1, 2]  # migrations ran once


def test_a_store_newer_than_this_harness_is_refused(store_url, opened):
    opened().close()
    if store_url.startswith("sqlite:///"):
        with closing(sqlite3.connect(store_url[len("sqlite:///"):])) as db:
            db.execute(f"PRAGMA user_version = {STORE_SCHEMA_VERSION + 1}")
    else:
        import psycopg

        with psycopg.connect(store_url, autocommit=True) as db:
            db.execute("UPDATE harness_schema SET version = version + 1")
    with pytest.raises(InputError, match=f"schema {STORE_SCHEMA_VERSION + 1} is newer") as err:
        opened()
    assert "upgrade edge-harness" in err.value.render()


def test_a_step_is_found_with_its_commits_on_every_backend(opened):
    """history --changes reads the summary columns through either backend."""
    from harness.report import history_changes
    from tests.change_series import STORE_STEP_AT, commit, fill_history

    fill_history(opened(), step_pct=10)
    [series] = history_changes.all_changes(opened(), "p90")
    [row] = series.rows()
    assert (row["before_commit"], row["after_commit"]) == (commit(STORE_STEP_AT - 1), commit(STORE_STEP_AT))
    assert 8 < row["step_pct"] < 12
