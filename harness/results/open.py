"""The one place that opens the results store.

Where results go, first match wins: `--store URL`, $HARNESS_STORE, then
sqlite:///<reports>/results.sqlite (the embedded default, unchanged).

    sqlite:///reports/results.sqlite     a relative path
    sqlite:////srv/results.sqlite        an absolute path
    postgresql://user@host:5432/bench?sslmode=verify-full
    postgresql:///?service=team          a libpq service file entry

A password belongs in $HARNESS_STORE or a libpq service file (or
~/.pgpass): on the command line every user of the machine sees it in `ps`.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.errors import InputError
from harness.results.store import ResultsStore, SqliteStore
from harness.results.urls import mask_url, url_password

STORE_ENV = "HARNESS_STORE"
DEFAULT_DB_NAME = "results.sqlite"
_SQLITE_PREFIX = "sqlite:///"
_POSTGRES_PREFIXES = ("postgresql://", "postgres://")
_URL_FORMS = "sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE"


def store_source(url: str | None) -> tuple[str | None, str]:
    """The URL in effect and where it came from (for messages)."""
    if url:
        return url, "--store"
    env = os.environ.get(STORE_ENV, "").strip()
    if env:
        return env, f"${STORE_ENV}"
    return None, "default"


def open_store(
    url: str | None,
    reports_dir: Path,
    *,
    must_exist: bool = False,
    missing_hint: str = "run `harness demo` first, or pass --reports DIR or --store URL",
) -> ResultsStore:
    """Open (and migrate) the store; with ``must_exist``, a missing SQLite
    file is an input error instead of a new empty database."""
    url, source = store_source(url)
    if url is None:
        return _sqlite(reports_dir / DEFAULT_DB_NAME, must_exist, missing_hint)
    if url.startswith(_SQLITE_PREFIX) and len(url) > len(_SQLITE_PREFIX):
        return _sqlite(Path(url[len(_SQLITE_PREFIX):]), must_exist, missing_hint)
    if url.startswith(_POSTGRES_PREFIXES):
        if source == "--store" and url_password(url):
            raise InputError(
                f"a password on the command line is visible to every user of this machine: {mask_url(url)}",
                source=source,
                hint=f"put the URL in ${STORE_ENV}, or use a libpq service file or ~/.pgpass",
            )
        from harness.results.postgres import PostgresStore

        return PostgresStore(url, source=source)
    raise InputError(
        f"unknown results store {mask_url(url)!r}", source=source, hint=f"write it as {_URL_FORMS}"
    )


def _sqlite(path: Path, must_exist: bool, missing_hint: str) -> SqliteStore:
    if must_exist and not path.is_file():
        raise InputError("no results database", source=path, hint=missing_hint)
    return SqliteStore(path)
