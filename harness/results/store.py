"""The results store: one interface, two back ends (SQLite, PostgreSQL).

SQLite (reports/results.sqlite) is the embedded default; a team points
every controller at one PostgreSQL (harness/results/postgres.py). Both share
the SQL below; harness/results/open.py picks one from a URL.

Every measured pair is committed before the next one starts, so a crash or
Ctrl-C loses nothing already measured. Raw samples are stored as packed
little-endian int64 nanoseconds, in batches of schema.SAMPLE_BATCH values.
"""

from __future__ import annotations

import json
import sqlite3
from array import array
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, ContextManager, Iterable, Iterator, Protocol, Sequence

from harness.errors import InputError
from harness.results.record import Record, utc_now_iso
from harness.results.schema import (
    QUERY_COLUMNS,
    SAMPLE_BATCH,
    STORE_SCHEMA_VERSION,
    apply_migration,
    query_columns,
)
from harness.results.trend import METRICS, TrendPoint, trend_points

__all__ = [
    "STORE_SCHEMA_VERSION", "PairStatus", "ResultsStore", "RunInfo", "SqlStore", "SqliteStore", "Superseded", "TrendPoint",
]


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    created_at: str
    harness_version: str
    status: str  # running | finished | failed | interrupted
    command: str
    run_dir: str
    finished_at: str | None = None
    source_commit: str | None = None  # what was measured (harness/results/provenance.py)
    host: str | None = None  # the controller that measured it


@dataclass(frozen=True)
class PairStatus:
    """One current record's names and status, read without its JSON."""

    run_id: str
    device: str
    model: str
    variant: str
    status: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.device, self.model, self.variant)


@dataclass(frozen=True)
class Superseded:
    """A record measured again (`harness gate --remeasure`): the first
    measurement is kept, with its samples, but no longer answers for the pair."""

    record: Record
    superseded_at: str  # when the re-measurement replaced it (UTC ISO-8601)


# An imported record: (record, samples) or (record, samples, superseded_at).
ImportItem = tuple[Any, ...]


class ResultsStore(Protocol):
    """What the runner, the reports and the CLI may ask of a store."""

    location: str  # a path or a URL with its password masked, for messages

    def begin_run(self, run: RunInfo) -> None: ...
    def reopen_run(self, run_id: str) -> None: ...
    def finish_run(self, run_id: str, status: str) -> None: ...
    def add_record(self, record: Record, samples_ns: Iterable[int] | None = None, *, supersede: bool = False) -> None: ...
    def import_run(self, run: RunInfo, records: Iterable[ImportItem]) -> int: ...
    def runs(self) -> list[RunInfo]: ...
    def run(self, run_id: str) -> RunInfo | None: ...
    def resolve_run(self, ref: str | None) -> str: ...
    def records(self, run_id: str) -> list[Record]: ...
    def superseded(self, run_id: str) -> list[Superseded]: ...
    def pairs(self) -> list[PairStatus]: ...
    def samples_ns(self, run_id: str, device: str, model: str, variant: str, *, superseded_at: str | None = None) -> list[int]: ...
    def trend(self, metric: str, *, device: str = "*", model: str = "*", variant: str = "*",
              until_run: str | None = None) -> list[TrendPoint]: ...
    def close(self) -> None: ...
    def __enter__(self) -> "ResultsStore": ...
    def __exit__(self, *exc: object) -> None: ...


_RUN_COLUMNS = "run_id, created_at, harness_version, status, command, run_dir, finished_at, source_commit, host"


class SqlStore:
    """The queries both back ends share, written with `?` parameters.

    A subclass provides the connection (``_db``, a DB-API connection in
    autocommit mode), ``dialect``, ``_transaction`` and the schema version
    bookkeeping.
    """

    dialect: str
    location: str
    _db: Any

    # -- back-end hooks ----------------------------------------------------

    def _transaction(self) -> ContextManager[None]:
        raise NotImplementedError

    def _schema_version(self) -> int:
        raise NotImplementedError

    def _set_schema_version(self, version: int) -> None:
        raise NotImplementedError

    def _lock_schema(self) -> None:
        """Serialise migrations between controllers opening the store at once."""

    def _sql(self, text: str) -> str:
        return text

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._db.execute(self._sql(sql), params)

    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._db.cursor().executemany(self._sql(sql), rows)

    # -- schema ------------------------------------------------------------

    def _migrate(self) -> None:
        with self._transaction():
            self._lock_schema()
            current = self._schema_version()
            if current > STORE_SCHEMA_VERSION:
                raise InputError(
                    f"database schema {current} is newer than this harness ({STORE_SCHEMA_VERSION})",
                    source=self.location,
                    hint="upgrade edge-harness",
                )
            for version in range(current + 1, STORE_SCHEMA_VERSION + 1):
                apply_migration(self, version)
                self._set_schema_version(version)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "SqlStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------

    def begin_run(self, run: RunInfo) -> None:
        with self._transaction():
            self._insert_run(run)

    def _insert_run(self, run: RunInfo) -> None:
        self._execute(
            f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run.run_id, run.created_at, run.harness_version, run.status, run.command, run.run_dir, run.finished_at,
             run.source_commit, run.host),
        )

    def reopen_run(self, run_id: str) -> None:
        with self._transaction():
            self._execute("UPDATE runs SET status = 'running', finished_at = NULL WHERE run_id = ?", (run_id,))

    def finish_run(self, run_id: str, status: str) -> None:
        with self._transaction():
            self._execute("UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?", (status, utc_now_iso(), run_id))

    def add_record(self, record: Record, samples_ns: Iterable[int] | None = None, *, supersede: bool = False) -> None:
        """Insert or replace the record of one (device, model, variant).

        A later round of the same measurement replaces it; a new measurement
        of a complete pair (``supersede``) keeps the one it replaces, marked
        superseded, so a run used as a baseline never silently changes."""
        current = "run_id = ? AND device = ? AND model = ? AND variant = ? AND superseded_at IS NULL"
        with self._transaction():
            if supersede:
                self._execute(f"UPDATE records SET superseded_at = ? WHERE {current}", (utc_now_iso(), record.run_id, *record.key))
            else:
                self._execute(f"DELETE FROM records WHERE {current}", (record.run_id, *record.key))
            self._insert_record(record, samples_ns or (), None)

    def _insert_record(self, record: Record, samples_ns: Iterable[int], superseded_at: str | None) -> None:
        data = record.to_dict()
        columns = ", ".join(QUERY_COLUMNS)
        marks = ", ".join("?" for _ in QUERY_COLUMNS)
        ((record_id,),) = self._execute(
            "INSERT INTO records (run_id, device, model, variant, status, created_at, record_json, superseded_at,"
            f" {columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, {marks}) RETURNING id",
            (record.run_id, *record.key, record.status, record.created_at, json.dumps(data), superseded_at,
             *query_columns(data)),
        ).fetchall()  # fetch all: SQLite finishes a RETURNING statement only then
        self._executemany(
            "INSERT INTO sample_batches (record_id, batch, samples_ns) VALUES (?, ?, ?)",
            ((record_id, n, batch) for n, batch in enumerate(_packed_batches(samples_ns))),
        )

    def import_run(self, run: RunInfo, records: Iterable[ImportItem]) -> int:
        """Merge a run from another store in one transaction; returns how many
        records were written (0: it was already here, unchanged). An item
        with a third element, superseded_at, is a superseded record."""
        written = 0
        with self._transaction():
            existing = self.run(run.run_id)
            if existing is None:
                self._insert_run(run)
                stored: dict[tuple[str, str, str], Record] = {}
                kept: list[tuple[Record, str]] = []  # a list: records hold dicts, so they do not hash
            else:
                self._execute(
                    "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?",
                    (run.status, run.finished_at, run.run_id),
                )
                stored = {r.key: r for r in self.records(run.run_id)}
                kept = [(s.record, s.superseded_at) for s in self.superseded(run.run_id)]
            for record, samples, *rest in records:
                superseded_at = rest[0] if rest else None
                if superseded_at is not None and (record, superseded_at) not in kept:
                    self._insert_record(record, samples, superseded_at)
                    written += 1
                elif superseded_at is None and stored.get(record.key) != record:
                    self.add_record(record, samples)
                    written += 1
        return written

    # -- reading -----------------------------------------------------------

    def runs(self) -> list[RunInfo]:
        rows = self._execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY created_at, run_id").fetchall()
        return [RunInfo(*row) for row in rows]

    def run(self, run_id: str) -> RunInfo | None:
        row = self._execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else RunInfo(*row)

    def resolve_run(self, ref: str | None) -> str:
        """`latest` (or nothing) means the newest run; otherwise an exact id."""
        if ref not in (None, "", "latest") and self.run(ref) is not None:  # type: ignore[arg-type]
            return ref  # type: ignore[return-value]
        runs = self.runs()
        if not runs:
            raise InputError("no runs recorded yet", source=self.location, hint="run `harness demo` or `harness run` first")
        if ref in (None, "", "latest"):
            return runs[-1].run_id
        known = ", ".join(r.run_id for r in runs[-5:])
        raise InputError(f"no run {ref!r}", source=self.location, hint=f"recent runs: {known}")

    def records(self, run_id: str) -> list[Record]:
        """The run's current records (a superseded one is in superseded())."""
        rows = self._execute(
            "SELECT record_json FROM records WHERE run_id = ? AND superseded_at IS NULL ORDER BY id", (run_id,)
        ).fetchall()
        return [Record.from_dict(json.loads(row[0])) for row in rows]

    def superseded(self, run_id: str) -> list[Superseded]:
        """The run's records that a re-measurement replaced, oldest first."""
        rows = self._execute(
            "SELECT record_json, superseded_at FROM records WHERE run_id = ? AND superseded_at IS NOT NULL ORDER BY id",
            (run_id,),
        ).fetchall()
        return [Superseded(Record.from_dict(json.loads(text)), at) for text, at in rows]

    def pairs(self) -> list[PairStatus]:
        """Every current record's names and status, in run order (from the
        columns alone: history summaries need no record JSON)."""
        rows = self._execute(
            "SELECT r.run_id, r.device, r.model, r.variant, r.status FROM records r JOIN runs u ON u.run_id = r.run_id"
            " WHERE r.superseded_at IS NULL ORDER BY u.created_at, u.run_id, r.id"
        ).fetchall()
        return [PairStatus(*row) for row in rows]

    def samples_ns(self, run_id: str, device: str, model: str, variant: str, *, superseded_at: str | None = None) -> list[int]:
        values = array("q")
        for blob in self.iter_sample_batches(run_id, device, model, variant, superseded_at=superseded_at):
            values.frombytes(blob)
        return values.tolist()

    def iter_sample_batches(
        self, run_id: str, device: str, model: str, variant: str, *, superseded_at: str | None = None
    ) -> Iterator[bytes]:
        """The packed batches of one pair, in order (for streaming exports):
        of its current record, or of the one superseded at ``superseded_at``."""
        which = "superseded_at IS NULL" if superseded_at is None else "superseded_at = ?"
        rows = self._execute(
            "SELECT samples_ns FROM sample_batches WHERE record_id = (SELECT MAX(id) FROM records"
            f" WHERE run_id = ? AND device = ? AND model = ? AND variant = ? AND {which}) ORDER BY batch",
            (run_id, device, model, variant, *(() if superseded_at is None else (superseded_at,))),
        )
        for (blob,) in rows:
            yield bytes(blob)

    def trend(self, metric: str, *, device: str = "*", model: str = "*", variant: str = "*",
              until_run: str | None = None) -> list[TrendPoint]:
        """One metric (trend.METRICS) of every current record whose names
        match the globs, oldest run first, up to and including ``until_run``:
        the series behind history views, read from the summary columns."""
        until = self.run(until_run) if until_run is not None else None
        return trend_points(self, METRICS[metric], {"device": device, "model": model, "variant": variant}, until)


def _packed_batches(samples_ns: Iterable[int]) -> Iterator[bytes]:
    it = iter(samples_ns)
    while batch := list(islice(it, SAMPLE_BATCH)):
        yield array("q", batch).tobytes()  # native order: little-endian on our hosts


class SqliteStore(SqlStore):
    """The embedded default: one file, reports/results.sqlite."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise InputError(
                f"cannot open the results database: {exc}",
                source=self.path,
                hint="pass a writable folder with --out, or fix the folder's permissions",
            ) from exc
        try:
            # Migrations run before foreign keys are enforced: v5 copies the
            # records table, and dropping the old one must not cascade into
            # the samples (SQLite's own procedure for changing a table).
            self._migrate()
            self._db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise InputError(
                f"not a results database ({exc})",
                source=self.path,
                hint="move the file away; a new database is created on the next run",
            ) from exc

    def _transaction(self) -> "_Tx":
        return _Tx(self._db)

    def _schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _set_schema_version(self, version: int) -> None:
        self._db.execute(f"PRAGMA user_version = {int(version)}")


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception; nested use
    joins the outer transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._outer = False

    def __enter__(self) -> None:
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
            self._outer = True

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if not self._outer or not self._db.in_transaction:
            return
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")
