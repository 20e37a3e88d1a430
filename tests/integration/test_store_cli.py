"""The CLI on both stores: `--store`/$HARNESS_STORE, `harness store
export|import`, resume against PostgreSQL, and what a bad or unreachable
store says (exit 2 / 3, never the password)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.results.open import STORE_ENV
from tests.integration.test_cli_errors import assert_clean_input_error


def assert_infra_error(result, *needles):
    assert result.exit_code == 3, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in result.stderr, result.stderr


def _pg_counts(url: str) -> tuple[int, int, int]:
    import psycopg

    with psycopg.connect(url) as db:
        return tuple(  # type: ignore[return-value]
            db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in ("runs", "records", "sample_batches")
        )


@pytest.fixture(scope="module")
def demo_sqlite_run(demo_artifacts, session_cache, tmp_path_factory):
    """A real demo run (fp32 and int8, variants from the session cache) in
    the default SQLite store."""
    reports = tmp_path_factory.mktemp("reports")
    env = dict(os.environ, HARNESS_REPORTS=str(reports), HARNESS_CACHE=str(session_cache), COLUMNS="200")
    env.pop(STORE_ENV, None)
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "demo", "--variants", "fp32,int8"],
        cwd=reports, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = [p for p in reports.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return reports, run_dir.name


@pytest.mark.slow
def test_demo_run_moved_from_sqlite_into_postgresql_twice_is_stored_once_and_renders_identically(
    demo_sqlite_run, pg_cluster, pg_url, run_cli, tmp_path
):
    reports, run_id = demo_sqlite_run
    sqlite = {"HARNESS_REPORTS": str(reports), STORE_ENV: ""}
    postgres = {STORE_ENV: pg_url}
    exported = tmp_path / "runs.jsonl"
    result = run_cli("store", "export", "latest", "--out", str(exported), env=sqlite)
    assert result.exit_code == 0 and "exported 1 run(s), 2 record(s)" in result.stderr, result.stderr

    first = run_cli("store", "import", str(exported), env=postgres)
    assert first.exit_code == 0 and "1 new run(s)" in first.stderr and "2 record(s) written" in first.stderr, first.stderr
    second = run_cli("store", "import", str(exported), env=postgres)
    assert second.exit_code == 0 and "1 already present; 0 record(s) written" in second.stderr, second.stderr
    assert pg_cluster.password not in first.stderr + second.stderr and "harness:***@" in first.stderr
    runs, records, batches = _pg_counts(pg_url)
    assert (runs, records) == (1, 2) and batches >= 2

    for fmt in ("md", "json", "html", "csv"):
        from_sqlite = run_cli("report", run_id, "--format", fmt, env=sqlite)
        from_postgres = run_cli("report", run_id, "--format", fmt, env=postgres)
        assert from_sqlite.exit_code == from_postgres.exit_code == 0, from_postgres.stderr
        assert from_sqlite.stdout == from_postgres.stdout and run_id in from_sqlite.stdout
    # The comparison reads raw samples: the same on both back ends.
    cmp_sqlite = run_cli("report", run_id, "--baseline", run_id, "--format", "json", env=sqlite)
    cmp_postgres = run_cli("report", run_id, "--baseline", run_id, "--format", "json", env=postgres)
    assert cmp_sqlite.stdout == cmp_postgres.stdout and '"verdict": "same"' in cmp_sqlite.stdout


@pytest.mark.slow
def test_a_run_writes_to_postgresql_and_resumes_from_it(demo_artifacts, session_cache, pg_url, run_cli, tmp_path):
    import psycopg

    model = demo_artifacts["fp32"].path  # a bare .tflite: latency and memory only, quick
    env = {STORE_ENV: pg_url, "HARNESS_CACHE": str(session_cache)}
    first = run_cli("run", "--model", str(model), env=env)
    assert first.exit_code == 0, first.stderr
    assert not (tmp_path / "reports" / "results.sqlite").exists()  # nothing went to the default store
    with psycopg.connect(pg_url, autocommit=True) as db:
        (run_id,) = db.execute("SELECT run_id FROM runs").fetchone()
        db.execute("DELETE FROM records")  # as if the controller died before measuring its pair

    resumed = run_cli("run", "--resume", "latest", env=env)
    assert resumed.exit_code == 0, resumed.stderr
    assert _pg_counts(pg_url)[:2] == (1, 1)
    with psycopg.connect(pg_url) as db:
        assert db.execute("SELECT status FROM runs").fetchone() == ("finished",)
        (status, variant) = db.execute("SELECT status, variant FROM records WHERE run_id = %s", (run_id,)).fetchone()
    assert (status, variant) == ("ok", "fp32")


def test_a_password_on_the_command_line_is_refused_and_never_printed(run_cli, pg_cluster, pg_url):
    result = run_cli("report", "--store", pg_url)
    assert_clean_input_error(result, "--store", "visible to every user", STORE_ENV, "harness:***@")
    assert pg_cluster.password not in result.stderr + result.stdout


def test_a_wrong_password_is_an_infrastructure_error_without_the_password(run_cli, pg_cluster, pg_url):
    wrong = pg_url.replace(pg_cluster.password, "Wr0ng-S3cret")
    result = run_cli("report", env={STORE_ENV: wrong})
    assert_infra_error(result, "cannot connect to the results store", "harness:***@", "password authentication failed")
    assert "Wr0ng-S3cret" not in result.stderr + result.stdout


def test_tls_options_reach_libpq(run_cli, pg_url):
    # The test server has no TLS: libpq refusing the connection proves sslmode got through.
    result = run_cli("report", env={STORE_ENV: pg_url + "?sslmode=require"})
    assert_infra_error(result, "SSL")


def test_an_unreachable_server_is_exit_3(run_cli, pg_cluster):
    url = pg_cluster.url("nothing").replace(f":{pg_cluster.port}/", ":1/")
    assert_infra_error(run_cli("report", env={STORE_ENV: url}), "127.0.0.1", "refused")


def test_bad_store_urls_are_input_errors(run_cli, pg_url):
    assert_clean_input_error(run_cli("report", "--store", "mysql://db/x"), "--store", "unknown results store", "sqlite:///PATH")
    assert_clean_input_error(
        run_cli("report", env={STORE_ENV: pg_url + "?no_such_option=1"}), f"${STORE_ENV}", "not a valid PostgreSQL URL", "***"
    )


def test_an_empty_postgresql_store_has_no_runs(run_cli, pg_url):
    assert_clean_input_error(run_cli("report", env={STORE_ENV: pg_url}), "no runs recorded yet", "harness demo")


def test_postgresql_without_its_driver_says_how_to_install_it(run_cli, pg_url, tmp_path):
    # A stand-in for "psycopg is not installed": a package of that name that fails to import.
    shadow = tmp_path / "no-psycopg" / "psycopg"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('psycopg is not installed here')\n")
    result = run_cli("report", env={STORE_ENV: pg_url, "PYTHONPATH": str(shadow.parent)})
    assert_clean_input_error(result, "psycopg", "pip install 'edge-harness[postgres]'")


def test_importing_a_file_that_is_not_an_export_names_the_line(run_cli, tmp_path):
    bad = tmp_path / "runs.jsonl"
    bad.write_text('{"format": "edge-harness-runs", "version": 1}\n{"run": {"run_id": "a"\n')
    assert_clean_input_error(run_cli("store", "import", str(bad)), str(bad), "line 2", "not JSON")
