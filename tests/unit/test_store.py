"""SQLite-only behaviour of the store; the shared suite for both back ends is
tests/integration/test_store_backends.py."""

import json
import sqlite3

import pytest

from harness.errors import InputError
from harness.results.files import read_results, write_results
from harness.results.record import utc_now_iso
from harness.results.store import STORE_SCHEMA_VERSION, RunInfo, SqliteStore
from tests.store_records import make_record


def new_store(tmp_path):
    store = SqliteStore(tmp_path / "results.sqlite")
    store.begin_run(RunInfo("r1", utc_now_iso(), "0.1.0", "running", "demo", str(tmp_path)))
    return store


def test_record_round_trips_through_the_results_file(tmp_path):
    record = make_record()
    path = write_results(tmp_path, "r1", [record], {"command": "demo"})
    assert read_results(path) == [record]
    data = json.loads(path.read_text())
    assert data["records"][0]["latency_ms"]["p90_ci"] == [1.5, 3.0]
    assert set(data["records"][0]) >= {
        "schema_version", "run_id", "created_at", "harness_version", "device", "model", "status", "error",
        "latency_ms", "load_ms", "first_invoke_ms", "threads", "memory_mb", "accuracy", "env",
    }


def test_a_file_that_is_not_a_database_is_an_input_error(tmp_path):
    bad = tmp_path / "results.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError, match="not a results database"):
        SqliteStore(bad)


def test_schema_version_is_recorded_in_user_version(tmp_path):
    new_store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "results.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == STORE_SCHEMA_VERSION == 5
