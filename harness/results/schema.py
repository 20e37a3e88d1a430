"""The results database schema: one list of migrations for both back ends.

A store at version N has had migrations 1..N applied, in order, inside one
transaction when it was opened. The SQL is written once; the few words that
differ between SQLite and PostgreSQL are placeholders ({id}, {bigint},
{blob}, {real}). Steps that need per-row logic are Python functions run on
the store's own connection, so they work on either back end.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from harness.results.store import SqlStore

STORE_SCHEMA_VERSION = 5

# Samples are written in batches of this many values (64 KiB rows): a long
# measurement never needs one huge statement, and readers can stream.
SAMPLE_BATCH = 8192

_DIALECT_WORDS: dict[str, dict[str, str]] = {
    "sqlite": {"id": "INTEGER PRIMARY KEY", "bigint": "INTEGER", "blob": "BLOB", "real": "REAL"},
    "postgresql": {"id": "BIGSERIAL PRIMARY KEY", "bigint": "BIGINT", "blob": "BYTEA", "real": "DOUBLE PRECISION"},
}

# The columns copied out of record_json so history and trend queries need
# no JSON parsing in SQL (whose syntax differs between the back ends), with
# where each one is in a record (as Record.to_dict() gives it): v2's, then v4's.
QUERY_FIELDS: dict[str, tuple[str, ...]] = {
    "p50_ms": ("latency_ms", "p50"),
    "p90_ms": ("latency_ms", "p90"),
    "p99_ms": ("latency_ms", "p99"),
    "map": ("accuracy", "map"),
    "map50": ("accuracy", "map50"),
    "peak_memory_mb": ("memory_mb", "peak"),
    "size_bytes": ("model", "size_bytes"),
    "detections": ("accuracy", "detections"),  # the COCO results file of this pair
    "mean_ms": ("latency_ms", "mean"),
    "load_ms": ("load_ms",),
    "p50_ci_lo_ms": ("latency_ms", "p50_ci", 0),
    "p50_ci_hi_ms": ("latency_ms", "p50_ci", 1),
    "p90_ci_lo_ms": ("latency_ms", "p90_ci", 0),
    "p90_ci_hi_ms": ("latency_ms", "p90_ci", 1),
    "p99_ci_lo_ms": ("latency_ms", "p99_ci", 0),
    "p99_ci_hi_ms": ("latency_ms", "p99_ci", 1),
}
QUERY_COLUMNS = tuple(QUERY_FIELDS)
_V2_COLUMNS = QUERY_COLUMNS[:8]
_V4_COLUMNS = QUERY_COLUMNS[8:]
_COLUMN_TYPES = {"size_bytes": "{bigint}", "detections": "TEXT"}  # the others: {real}


def query_columns(record: dict[str, Any], names: Sequence[str] = QUERY_COLUMNS) -> tuple[Any, ...]:
    """The named query columns' values of one record (as Record.to_dict() gives it)."""
    return tuple(_field(record, QUERY_FIELDS[name]) for name in names)


def _field(data: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        if data is None:
            return None
        data = data.get(step) if isinstance(step, str) else data[step]
    return data


# What every version's records table starts with (v5 copies it, see below).
_RECORDS_HEAD = """
    id {id},
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    device TEXT NOT NULL,
    model TEXT NOT NULL,
    variant TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    record_json TEXT NOT NULL,"""

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
CREATE TABLE records (""" + _RECORDS_HEAD + """
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


# v4: the rest of what a trend shows (harness/results/trend.py), so
# `harness history --trend` reads columns only: mean, load time and the
# quantiles' interval bounds.
_V4 = ";\n".join(f"ALTER TABLE records ADD COLUMN {name} {_COLUMN_TYPES.get(name, '{real}')}" for name in _V4_COLUMNS)


# v5: a re-measured pair (`harness gate --remeasure`) keeps its first record
# and samples, marked superseded; only one current record per pair and run.
# SQLite cannot drop v1's UNIQUE constraint, so it copies the table (the
# store runs migrations with foreign keys off, so sample_batches survive).
_RECORD_COLUMNS = ", ".join(("id", "run_id", "device", "model", "variant", "status", "created_at", "record_json", *QUERY_COLUMNS))
_V5_SQLITE = f"""
CREATE TABLE records_v5 ({_RECORDS_HEAD}
    {", ".join(f"{name} {_COLUMN_TYPES.get(name, '{real}')}" for name in QUERY_COLUMNS)},
    superseded_at TEXT
);
INSERT INTO records_v5 ({_RECORD_COLUMNS}) SELECT {_RECORD_COLUMNS} FROM records;
DROP TABLE records;
ALTER TABLE records_v5 RENAME TO records;
CREATE INDEX records_by_pair ON records (device, model, variant);
CREATE INDEX records_by_run ON records (run_id)
"""
_V5_CURRENT = "CREATE UNIQUE INDEX records_current ON records (run_id, device, model, variant) WHERE superseded_at IS NULL"


def _backfill(names: Sequence[str]) -> Callable[["SqlStore"], None]:
    def backfill(store: "SqlStore") -> None:
        rows = store._execute("SELECT id, record_json FROM records").fetchall()
        assignments = ", ".join(f"{name} = ?" for name in names)
        store._executemany(
            f"UPDATE records SET {assignments} WHERE id = ?",
            [(*query_columns(json.loads(text), names), record_id) for record_id, text in rows],
        )

    return backfill


def _supersedable(store: "SqlStore") -> None:
    if store.dialect == "sqlite":
        for statement in statements(_V5_SQLITE, "sqlite"):
            store._execute(statement)
    else:
        store._execute("ALTER TABLE records ADD COLUMN superseded_at TEXT")
        rows = store._execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'records'::regclass AND contype = 'u'"
        ).fetchall()
        for (name,) in rows:  # v1's UNIQUE (run_id, device, model, variant)
            store._execute(f'ALTER TABLE records DROP CONSTRAINT "{name}"')
    store._execute(_V5_CURRENT)


MIGRATIONS: dict[int, tuple[str | Callable[["SqlStore"], None], ...]] = {
    1: (_V1,),
    2: (_V2, _backfill(_V2_COLUMNS)),
    3: (_V3,),
    4: (_V4, _backfill(_V4_COLUMNS)),
    5: (_supersedable,),
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
