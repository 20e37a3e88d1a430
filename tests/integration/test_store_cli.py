"""The CLI on both stores: `--store`/$HARNESS_STORE, `harness store
export|import`, resume against PostgreSQL, and what a bad or unreachable
store says (exit 2 / 3, never the password)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from harness.results.open import STORE_ENV
from harness.model.variants import DEFAULT_VARIANTS
from tests.cli_checks import assert_clean_input_error


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


@pytest.fixture
def exported_demo(demo_run, run_cli, tmp_path):
    """The session's demo run (in its SQLite store), exported to a file."""
    reports, run_dir, _ = demo_run
    exported = tmp_path / "runs.jsonl"
    result = run_cli("store", "export", "latest", "--out", str(exported), env={"HARNESS_REPORTS": str(reports), STORE_ENV: ""})
    assert result.exit_code == 0, result.stderr
    assert f"exported 1 run(s), {len(DEFAULT_VARIANTS)} record(s)" in result.stderr
    return reports, run_dir.name, exported


@pytest.mark.slow
def test_demo_run_moved_from_sqlite_into_postgresql_twice_is_stored_once_and_renders_identically(
    exported_demo, pg_cluster, pg_url, run_cli
):
    reports, run_id, exported = exported_demo
    sqlite = {"HARNESS_REPORTS": str(reports), STORE_ENV: ""}
    postgres = {STORE_ENV: pg_url}
    first = run_cli("store", "import", str(exported), env=postgres)
    assert first.exit_code == 0 and "1 new run(s)" in first.stderr, first.stderr
    second = run_cli("store", "import", str(exported), env=postgres)
    assert second.exit_code == 0 and "1 already present; 0 record(s) written" in second.stderr, second.stderr
    assert pg_cluster.password not in first.stderr + second.stderr and "harness:***@" in first.stderr
    runs, records, batches = _pg_counts(pg_url)
    assert (runs, records) == (1, len(DEFAULT_VARIANTS)) and batches >= records

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
def test_resume_against_postgresql_measures_only_the_missing_pair(exported_demo, worker_cache, pg_url, run_cli, tmp_path):
    import psycopg

    _, run_id, exported = exported_demo
    # The run's folder moves with it (a laptop's run, resumed on a CI runner).
    moved = tmp_path / "moved" / run_id
    shutil.copytree(Path(json.loads(exported.read_text().splitlines()[1])["run"]["run_dir"]), moved)
    lines = exported.read_text().splitlines()
    run_line = json.loads(lines[1])
    run_line["run"]["run_dir"] = str(moved)
    exported.write_text("\n".join([lines[0], json.dumps(run_line), *lines[2:]]) + "\n")
    env = {STORE_ENV: pg_url, "HARNESS_CACHE": str(worker_cache)}
    assert run_cli("store", "import", str(exported), env=env).exit_code == 0
    with psycopg.connect(pg_url, autocommit=True) as db:
        # As if the controller had died before measuring fp32: neither the
        # store nor the run folder has it (a pair only the folder has is
        # stored from it on resume, not measured: tests/faults/test_store_faults.py).
        (old_created_at,) = db.execute("SELECT created_at FROM records WHERE variant = 'fp32'").fetchone()
        db.execute("DELETE FROM records WHERE variant = 'fp32'")
    results = json.loads((moved / "results.json").read_text())
    results["records"] = [r for r in results["records"] if r["model"]["variant"] != "fp32"]
    (moved / "results.json").write_text(json.dumps(results))

    resumed = run_cli("run", "--resume", run_id, env=env)
    assert resumed.exit_code == 0, resumed.stderr
    with psycopg.connect(pg_url) as db:
        assert db.execute("SELECT status FROM runs").fetchone() == ("finished",)
        rows = db.execute("SELECT variant, status, created_at FROM records WHERE run_id = %s", (run_id,)).fetchall()
    assert sorted(v for v, _, _ in rows) == sorted(DEFAULT_VARIANTS) and {s for _, s, _ in rows} == {"ok"}
    (fp32_created_at,) = [c for v, _, c in rows if v == "fp32"]
    assert fp32_created_at > old_created_at  # measured again, the others kept
    assert json.loads((moved / "results.json").read_text())["run_id"] == run_id


def test_a_password_on_the_command_line_is_refused_and_never_printed(run_cli, pg_cluster, pg_url):
    result = run_cli("report", "--store", pg_url)
    assert_clean_input_error(result, "--store", "visible to every user", STORE_ENV, "harness:***@")
    assert pg_cluster.password not in result.stderr + result.stdout


def test_a_wrong_password_is_an_infrastructure_error_without_the_password(run_cli, pg_cluster, pg_url):
    wrong = pg_url.replace(pg_cluster.password, "Wr0ng-S3cret")
    result = run_cli("report", env={STORE_ENV: wrong})
    assert_infra_error(result, "cannot connect to the results store", "harness:***@", "password authentication failed")
    assert "Wr0ng-S3cret" not in result.stderr + result.stdout


def test_tls_verify_full_with_the_servers_ca_is_encrypted_and_another_ca_is_refused(
        run_cli, pg_cluster, pg_url, tmp_path, monkeypatch):
    from harness.results.open import open_store
    from tests.tls import make_ca

    monkeypatch.setenv(STORE_ENV, f"{pg_url}?sslmode=verify-full&sslrootcert={pg_cluster.tls.ca_cert}")
    with open_store(None, tmp_path) as store:
        ssl, version = store._execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert ssl is True and version.startswith("TLS"), (ssl, version)
    other_ca, _, _ = make_ca(tmp_path, "not-the-servers-ca")
    result = run_cli("report", env={STORE_ENV: f"{pg_url}?sslmode=verify-full&sslrootcert={other_ca}"})
    assert_infra_error(result, "cannot connect to the results store", "certificate verify failed")
    assert pg_cluster.password not in result.stderr + result.stdout


def test_a_tls_store_opened_after_tensorflow_converted_a_model(pg_cluster, pg_url, tmp_path):
    """TensorFlow exports its own BoringSSL; a libpq loaded after it aborted
    the process on the first TLS connection (free(): invalid pointer) until
    the store loaded libpq with its own symbol scope."""
    import subprocess
    import sys

    script = """
import os, sys, tempfile
import tensorflow as tf
model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])
tf.lite.TFLiteConverter.from_keras_model(model).convert()
from harness.results.open import open_store
with open_store(None, tempfile.mkdtemp()) as store:
    print("ssl", store._execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0])
"""
    url = f"{pg_url}?sslmode=verify-full&sslrootcert={pg_cluster.tls.ca_cert}"
    proc = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, **{STORE_ENV: url}),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "ssl True"


def test_a_libpq_service_file_and_pgpass_keep_every_secret_out_of_the_url(run_cli, pg_cluster, pg_url, tmp_path):
    """The team's setup: `--store postgresql:///?service=team`, the server,
    TLS options and user in a service file, the password in a pgpass file."""
    from harness.results.record import utc_now_iso
    from harness.results.store import RunInfo, SqliteStore
    from tests.pg import HOST, SUPERUSER
    from tests.store_records import make_record

    database = pg_url.rsplit("/", 1)[1]
    service = tmp_path / "pg_service.conf"
    service.write_text(f"[team]\nhost={HOST}\nport={pg_cluster.port}\ndbname={database}\nuser={SUPERUSER}\n"
                       f"sslmode=verify-full\nsslrootcert={pg_cluster.tls.ca_cert}\n")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"{HOST}:{pg_cluster.port}:{database}:{SUPERUSER}:{pg_cluster.password}\n")
    pgpass.chmod(0o600)  # libpq ignores a password file others can read
    with SqliteStore(tmp_path / "laptop.sqlite") as laptop:
        laptop.begin_run(RunInfo("laptop-1", utc_now_iso(), "0.1.0", "finished", "run", "/runs/laptop-1"))
        laptop.add_record(make_record("laptop-1"), [1000, 1100, 1200])
    exported = tmp_path / "laptop.jsonl"
    assert run_cli("store", "export", "laptop-1", "--out", str(exported),
                   env={STORE_ENV: f"sqlite:///{tmp_path / 'laptop.sqlite'}"}).exit_code == 0
    env = {STORE_ENV: "", "PGSERVICEFILE": str(service), "PGPASSFILE": str(pgpass)}
    result = run_cli("store", "import", str(exported), "--store", "postgresql:///?service=team", env=env)
    assert result.exit_code == 0, result.stderr
    assert _pg_counts(pg_url) == (1, 1, 1)
    assert pg_cluster.password not in result.stderr + result.stdout


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
