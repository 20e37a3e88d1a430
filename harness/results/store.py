"""The results database (SQLite by default: reports/results.sqlite).

Every measured pair is committed before the next one starts, so a crash or
Ctrl-C loses nothing already measured. Raw samples are stored as packed
little-endian int64 nanoseconds next to the record.
"""

from __future__ import annotations

import json
import sqlite3
from array import array
from dataclasses import dataclass
from pathlib import Path
from harness.errors import InputError
from harness.results.record import Record, utc_now_iso

# PRAGMA user_version: bump with a migration below when the schema changes.
STORE_SCHEMA_VERSION = 1

_MIGRATIONS: dict[int, str] = {
    1: """
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
        id INTEGER PRIMARY KEY,
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
        record_id INTEGER PRIMARY KEY REFERENCES records(id) ON DELETE CASCADE,
        samples_ns BLOB NOT NULL
    );
    """,
}


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    created_at: str
    harness_version: str
    status: str  # running | finished | failed | interrupted
    command: str
    run_dir: str
    finished_at: str | None = None


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise InputError(
                f"cannot open the results database: {exc}",
                source=self.path,
                hint="pass a writable folder with --out, or fix the folder's permissions",
            ) from exc
        self._db.execute("PRAGMA foreign_keys = ON")
        self._migrate()

    def _migrate(self) -> None:
        try:
            current = self._db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise InputError(
                f"not a results database ({exc})",
                source=self.path,
                hint="move the file away; a new database is created on the next run",
            ) from exc
        if current > STORE_SCHEMA_VERSION:
            raise InputError(
                f"database schema {current} is newer than this harness ({STORE_SCHEMA_VERSION})",
                source=self.path,
                hint="upgrade edge-harness",
            )
        for version in range(current + 1, STORE_SCHEMA_VERSION + 1):
            # executescript commits first; the script is its own transaction.
            self._db.executescript(
                "BEGIN IMMEDIATE;" + _MIGRATIONS[version] + f"PRAGMA user_version = {version}; COMMIT;"
            )

    def _transaction(self) -> "_Tx":
        return _Tx(self._db)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "SqliteStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------

    def begin_run(self, run: RunInfo) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT INTO runs (run_id, created_at, finished_at, harness_version, status, command, run_dir)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run.run_id, run.created_at, run.finished_at, run.harness_version, run.status, run.command, run.run_dir),
            )

    def reopen_run(self, run_id: str) -> None:
        with self._transaction():
            self._db.execute("UPDATE runs SET status = 'running', finished_at = NULL WHERE run_id = ?", (run_id,))

    def finish_run(self, run_id: str, status: str) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?", (status, utc_now_iso(), run_id)
            )

    def add_record(self, record: Record, samples_ns: list[int] | None = None) -> None:
        """Insert or replace the record of one (device, model, variant)."""
        device, model, variant = record.key
        packed = array("q", samples_ns or []).tobytes()  # native order: little-endian on our hosts
        with self._transaction():
            self._db.execute(
                "DELETE FROM records WHERE run_id = ? AND device = ? AND model = ? AND variant = ?",
                (record.run_id, device, model, variant),
            )
            cursor = self._db.execute(
                "INSERT INTO records (run_id, device, model, variant, status, created_at, record_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record.run_id, device, model, variant, record.status, record.created_at, json.dumps(record.to_dict())),
            )
            if samples_ns:
                self._db.execute(
                    "INSERT INTO samples (record_id, samples_ns) VALUES (?, ?)", (cursor.lastrowid, packed)
                )

    # -- reading ---------------------------------------------------------

    def runs(self) -> list[RunInfo]:
        rows = self._db.execute(
            "SELECT run_id, created_at, harness_version, status, command, run_dir, finished_at"
            " FROM runs ORDER BY created_at, run_id"
        ).fetchall()
        return [RunInfo(*row) for row in rows]

    def run(self, run_id: str) -> RunInfo | None:
        for info in self.runs():
            if info.run_id == run_id:
                return info
        return None

    def resolve_run(self, ref: str | None) -> str:
        """`latest` (or nothing) means the newest run; otherwise an exact id."""
        runs = self.runs()
        if not runs:
            raise InputError(
                "no runs recorded yet", source=self.path, hint="run `harness demo` or `harness run` first"
            )
        if ref in (None, "", "latest"):
            return runs[-1].run_id
        for info in runs:
            if info.run_id == ref:
                return ref
        known = ", ".join(r.run_id for r in runs[-5:])
        raise InputError(f"no run {ref!r}", source=self.path, hint=f"recent runs: {known}")

    def records(self, run_id: str) -> list[Record]:
        rows = self._db.execute(
            "SELECT record_json FROM records WHERE run_id = ? ORDER BY id", (run_id,)
        ).fetchall()
        return [Record.from_dict(json.loads(row[0])) for row in rows]

    def samples_ns(self, run_id: str, device: str, model: str, variant: str) -> list[int]:
        row = self._db.execute(
            "SELECT s.samples_ns FROM samples s JOIN records r ON r.id = s.record_id"
            " WHERE r.run_id = ? AND r.device = ? AND r.model = ? AND r.variant = ?",
            (run_id, device, model, variant),
        ).fetchone()
        if row is None:
            return []
        values = array("q")
        values.frombytes(row[0])
        return values.tolist()


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if not self._db.in_transaction:
            return
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")

