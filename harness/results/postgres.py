"""The team back end: one PostgreSQL shared by every controller.

psycopg 3 is imported here only, when a postgresql:// URL is used (the
`postgres` extra). The URL goes to libpq as it is, so its TLS options
(sslmode, sslrootcert, sslcert, sslkey) and `service=` (a libpq service
file) work; no message ever shows its password.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from harness.errors import InfraError, InputError, StoreLost
from harness.results.libpq import isolate_libpq
from harness.results.store import SqlStore
from harness.results.urls import mask_secrets, mask_url

# pg_advisory_xact_lock key for migrations ("EHSTORE" in ASCII, truncated).
_MIGRATION_LOCK = 0x4548_5354_4F52_45
_CONNECT_TIMEOUT_S = 10


class PostgresStore(SqlStore):
    dialect = "postgresql"

    def __init__(self, url: str, *, source: str = "--store") -> None:
        self.location = mask_url(url)
        self._url = url
        isolate_libpq()  # before psycopg loads libpq: TensorFlow may be loaded already
        try:
            import psycopg
            from psycopg.conninfo import conninfo_to_dict
        except ImportError:
            raise InputError(
                "a postgresql:// store needs the psycopg driver, which is not installed",
                source=source,
                hint="pip install 'edge-harness[postgres]'",
            ) from None
        self._errors = psycopg.OperationalError
        self._conflicts = psycopg.IntegrityError
        try:
            params = conninfo_to_dict(url)
            extra: dict[str, Any] = {} if "connect_timeout" in params else {"connect_timeout": _CONNECT_TIMEOUT_S}
            self._db = psycopg.connect(url, autocommit=True, **extra)
        except psycopg.OperationalError as exc:
            raise InfraError(
                f"cannot connect to the results store {self.location}: {self._mask(exc)}",
                hint="check that the server is up and the URL (in HARNESS_STORE or a libpq service file) is right",
            ) from None
        except psycopg.ProgrammingError as exc:  # libpq could not parse the URL or its options
            raise InputError(
                f"not a valid PostgreSQL URL {self.location!r}: {self._mask(exc)}",
                source=source,
                hint="write it as postgresql://USER@HOST:PORT/DATABASE?sslmode=require (libpq's parameters)",
            ) from None
        self._migrate()

    def _mask(self, exc: BaseException) -> str:
        return mask_secrets(str(exc).strip(), self._url)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """A server lost mid-run is an infrastructure failure (exit 3); the
        run folder still holds every result measured."""
        try:
            yield
        except self._errors as exc:
            raise StoreLost(f"lost the results store {self.location}: {self._mask(exc)}") from None
        except self._conflicts as exc:  # another controller wrote the same run at the same moment
            raise InfraError(
                f"a concurrent write to the same run in {self.location}: {self._mask(exc)}",
                hint="run the command again (imports and resumes are idempotent)",
            ) from None

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._guard(), self._db.transaction():
            yield

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s")

    def _execute(self, sql: str, params: Any = ()) -> Any:
        with self._guard():
            return self._db.execute(self._sql(sql), params)

    def _executemany(self, sql: str, rows: Any) -> None:
        with self._guard():
            self._db.cursor().executemany(self._sql(sql), rows)

    def _lock_schema(self) -> None:
        # Four controllers opening an empty database at once: one migrates,
        # the others wait here and then find the schema current.
        self._execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
        self._execute("CREATE TABLE IF NOT EXISTS harness_schema (version INTEGER NOT NULL)")

    def _schema_version(self) -> int:
        row = self._execute("SELECT version FROM harness_schema").fetchone()
        return 0 if row is None else int(row[0])

    def _set_schema_version(self, version: int) -> None:
        self._execute("DELETE FROM harness_schema")
        self._execute("INSERT INTO harness_schema (version) VALUES (?)", (version,))

    def close(self) -> None:
        try:
            self._db.close()
        except self._errors:
            pass
