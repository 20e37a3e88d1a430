import json
import sqlite3

import pytest

from harness.errors import InputError
from harness.results.files import read_results, write_results
from harness.results.record import (
    Accuracy,
    DeviceInfo,
    EnvInfo,
    LatencyMs,
    MemoryMb,
    ModelInfo,
    Record,
    RuntimeInfo,
    utc_now_iso,
)
from harness.results.store import RunInfo, SqliteStore


def make_record(run_id="r1", variant="fp32", status="ok"):
    return Record(
        run_id=run_id,
        harness_version="0.1.0",
        device=DeviceInfo("local", "x86-cpu", "x86_64", "Linux 6", "3.11.7", RuntimeInfo("ai-edge-litert", "2.3.0"), 2),
        model=ModelInfo("demo", variant, "ab" * 32, 1234, "/tmp/m.tflite"),
        status=status,
        latency_ms=LatencyMs(3, 1.0, 2.0, 2.9, 2.99, 3.0, 2.0, 1.0, (1.5, 3.0), (1.0, 3.0), None, False, False, "ci-tight"),
        load_ms=1.5,
        first_invoke_ms=3.2,
        threads=1,
        memory_mb=MemoryMb(50.0, 60.0, 70.0, "vmhwm-reset"),
        accuracy=Accuracy("val", "/a.json", "/d.json", 200, 0.5, 0.8, 0.6),
        env=EnvInfo(40.0, 41.0, "performance", False, 2400.0, 0.3),
    )


def new_store(tmp_path):
    store = SqliteStore(tmp_path / "results.sqlite")
    store.begin_run(RunInfo("r1", utc_now_iso(), "0.1.0", "running", "demo", str(tmp_path)))
    return store


def test_record_round_trips_through_sqlite_and_json(tmp_path):
    store = new_store(tmp_path)
    record = make_record()
    store.add_record(record, [1_000_000, 2_000_000, 3_000_000])
    store.close()

    reopened = SqliteStore(tmp_path / "results.sqlite")
    assert reopened.records("r1") == [record]
    assert reopened.samples_ns("r1", "local", "demo", "fp32") == [1_000_000, 2_000_000, 3_000_000]

    path = write_results(tmp_path, "r1", [record], {"command": "demo"})
    assert read_results(path) == [record]
    data = json.loads(path.read_text())
    assert data["records"][0]["latency_ms"]["p90_ci"] == [1.5, 3.0]
    assert set(data["records"][0]) >= {
        "schema_version", "run_id", "created_at", "harness_version", "device", "model", "status", "error",
        "latency_ms", "load_ms", "first_invoke_ms", "threads", "memory_mb", "accuracy", "env",
    }


def test_measuring_a_pair_again_replaces_it_without_duplicates(tmp_path):
    store = new_store(tmp_path)
    store.add_record(make_record(status="failed"), [])
    store.add_record(make_record(), [5])
    assert [r.status for r in store.records("r1")] == ["ok"]
    assert store.samples_ns("r1", "local", "demo", "fp32") == [5]


def test_latest_resolves_to_the_newest_run_and_unknown_runs_are_input_errors(tmp_path):
    store = new_store(tmp_path)
    store.begin_run(RunInfo("r2", "2999-01-01T00:00:00Z", "0.1.0", "running", "run", str(tmp_path)))
    assert store.resolve_run("latest") == "r2"
    with pytest.raises(InputError, match="no run 'nope'"):
        store.resolve_run("nope")


def test_a_file_that_is_not_a_database_is_an_input_error(tmp_path):
    bad = tmp_path / "results.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError, match="not a results database"):
        SqliteStore(bad)


def test_schema_version_is_recorded(tmp_path):
    new_store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "results.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
