"""The results database schema: one list of migrations for both back ends.

A store at version N has had migrations 1..N applied, in order, inside one
transaction when it was opened. The SQL is written once; the few words that
differ between SQLite and PostgreSQL are placeholders ({id}, {bigint},
{blob}, {real}). Steps that need per-row logic are Python functions run on
the store's own connection, so they work on either back end.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from harness.results.store import SqlStore

STORE_SCHEMA_VERSION = 3

# Samples are written in batches of this many values (64 KiB rows): a long
# measurement never needs one huge statement, and readers can stream.
SAMPLE_BATCH = 8192

_DIALECT_WORDS: dict[str, dict[str, str]] = {
    "sqlite": {"id": "INTEGER PRIMARY KEY", "bigint": "INTEGER", "blob": "BLOB", "real": "REAL"},
    "postgresql": {"id": "BIGSERIAL PRIMARY KEY", "bigint": "BIGINT", "blob": "BYTEA", "real": "DOUBLE PRECISION"},
}

# The columns copied out of record_json so history and trend queries need
# no JSON parsing in SQL (whose syntax differs between the back ends).
QUERY_COLUMNS = ("p50_ms", "p90_ms", "p99_ms", "map", "map50", "peak_memory_mb", "size_bytes", "detections")


def query_columns(record: dict[str, Any]) -> tuple[Any, ...]:
    """The QUERY_COLUMNS values of one record (as Record.to_dict() gives it)."""
    latency = record.get("latency_ms") or {}
    accuracy = record.get("accuracy") or {}
    memory = record.get("memory_mb") or {}
    model = record.get("model") or {}
    return (
        latency.get("p50"), latency.get("p90"), latency.get("p99"),
        accuracy.get("map"), accuracy.get("map50"),
        memory.get("peak"), model.get("size_bytes"),
        accuracy.get("detections"),  # the COCO results file of this pair
    )


_V1 = """
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    harness_version TEXT NOT NULL,
    status TEXT NOT NULL,
    command TEXT NOT NULL,
    run_dir TEXT NOT NULL
);
CREATE TABLE records (
    id {id},
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    device TEXT NOT NULL,
    model TEXT NOT NULL,
    variant TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    record_json TEXT NOT NULL,
    UNIQUE (run_id, device, model, variant)
);
CREATE TABLE samples (
    record_id {bigint} PRIMARY KEY REFERENCES records(id) ON DELETE CASCADE,
    samples_ns {blob} NOT NULL
)
"""

# v2: samples in batches (v1 kept one blob per record), query columns and
# indexes for history and trends across runs.
_V2 = """
CREATE TABLE sample_batches (
    record_id {bigint} NOT NULL REFERENCES records(id) ON DELETE CASCADE,
    batch INTEGER NOT NULL,
    samples_ns {blob} NOT NULL,
    PRIMARY KEY (record_id, batch)
);
INSERT INTO sample_batches (record_id, batch, samples_ns) SELECT record_id, 0, samples_ns FROM samples;
DROP TABLE samples;
ALTER TABLE records ADD COLUMN p50_ms {real};
ALTER TABLE records ADD COLUMN p90_ms {real};
ALTER TABLE records ADD COLUMN p99_ms {real};
ALTER TABLE records ADD COLUMN map {real};
ALTER TABLE records ADD COLUMN map50 {real};
ALTER TABLE records ADD COLUMN peak_memory_mb {real};
ALTER TABLE records ADD COLUMN size_bytes {bigint};
ALTER TABLE records ADD COLUMN detections TEXT;
CREATE INDEX records_by_pair ON records (device, model, variant);
CREATE INDEX records_by_run ON records (run_id);
CREATE INDEX runs_by_created_at ON runs (created_at)
"""


# v3: where a run came from (harness/results/provenance.py); older runs stay NULL.
_V3 = """
ALTER TABLE runs ADD COLUMN source_commit TEXT;
ALTER TABLE runs ADD COLUMN host TEXT
"""


def _backfill_query_columns(store: "SqlStore") -> None:
    rows = store._execute("SELECT id, record_json FROM records").fetchall()
    assignments = ", ".join(f"{name} = ?" for name in QUERY_COLUMNS)
    store._executemany(
        f"UPDATE records SET {assignments} WHERE id = ?",
        [(*query_columns(json.loads(text)), record_id) for record_id, text in rows],
    )


MIGRATIONS: dict[int, tuple[str | Callable[["SqlStore"], None], ...]] = {
    1: (_V1,),
    2: (_V2, _backfill_query_columns),
    3: (_V3,),
}


def statements(sql: str, dialect: str) -> list[str]:
    """One migration's SQL rendered for a dialect, split into statements."""
    rendered = sql.format(**_DIALECT_WORDS[dialect])
    return [s.strip() for s in rendered.split(";") if s.strip()]


def apply_migration(store: "SqlStore", version: int) -> None:
    for step in MIGRATIONS[version]:
        if callable(step):
            step(store)
        else:
            for statement in statements(step, store.dialect):
                store._execute(statement)
