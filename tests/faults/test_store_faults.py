"""The shared results store (PostgreSQL) lost mid-run: the run stops with
exit 3 and a message that names the store (never its password); every pair
measured before the loss is in the run folder; once the server is back,
`--resume` measures only what the store lacks."""

from __future__ import annotations

import os
import signal

import pytest

from tests.faults.lab_faults import wait_for

VARIANTS = ("fp32", "int8", "fp16")


@pytest.fixture
def own_pg_cluster():
    """A cluster of this test's own: it is killed, the session's is not."""
    from tests.pg import PgCluster, pg_bin_dir

    if pg_bin_dir() is None:
        if os.environ.get("CI"):
            pytest.fail("the PostgreSQL fault test needs the server; CI must install it (.ci/run does)")
        pytest.skip("the PostgreSQL fault test needs the server (apt-get install postgresql)")
    with PgCluster(durable=True) as cluster:  # it is crashed and must come back with its data
        yield cluster


def _records_in(url: str) -> dict[tuple[str, str], str]:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2) as db:
            rows = db.execute("SELECT device, variant, created_at FROM records").fetchall()
    except (psycopg.OperationalError, psycopg.errors.UndefinedTable):  # polled while the controller creates it
        return {}
    return {(device, variant): created for device, variant, created in rows}


def test_results_store_lost_mid_run(own_pg_cluster, faults_run, fault_models):
    url = own_pg_cluster.create_database("lost")
    faults_run.env_extra = {"HARNESS_STORE": url}
    faults_run.plan.update(min_seconds=1.0, max_seconds=2.0, ci_rel_tol=0.0)
    proc = faults_run.start("run", "--model", str(fault_models / "model.yaml"), "--variants", ",".join(VARIANTS))
    before = wait_for(lambda: _records_in(url), 180, "a first pair in PostgreSQL")
    # SIGQUIT is PostgreSQL's immediate shutdown: no goodbye to clients, as in a crash.
    assert own_pg_cluster.process is not None
    own_pg_cluster.process.send_signal(signal.SIGQUIT)
    own_pg_cluster.process.wait(timeout=30)
    stopped = faults_run.finish(proc, timeout_s=180)

    assert stopped.exit_code == 3, stopped.stderr[-2000:]
    stopped.no_traceback()
    assert "lost the results store" in stopped.stderr and "harness:***@" in stopped.stderr
    run_id = stopped.results()["run_id"]
    assert f"harness run --resume {run_id}" in stopped.stderr and "results.json" in stopped.stderr
    assert own_pg_cluster.password not in stopped.stderr + stopped.stdout
    in_folder = {pair: r["created_at"] for pair, r in stopped.by_pair().items() if r["status"] == "ok"}
    assert len(before) < len(VARIANTS), "the store was lost too late to test anything"
    for pair, created_at in before.items():  # what the store had is in the run folder, unchanged
        assert in_folder.get(pair) == created_at, (pair, in_folder)

    own_pg_cluster.launch()  # the server is back (crash recovery from its WAL)
    stored_before = _records_in(url)
    assert stored_before.items() >= before.items()
    # The pair in hand when the store went away is in the folder only: resume stores it, not measures it.
    folder_only = {pair: created for pair, created in in_folder.items() if pair not in stored_before}
    resumed = faults_run.run("run", "--resume", run_id)
    assert resumed.exit_code == 0, resumed.stderr[-2000:]
    after = _records_in(url)
    assert set(after) == {("local", v) for v in VARIANTS}
    kept = {**stored_before, **folder_only}
    assert all(after[pair] == created_at for pair, created_at in kept.items()), "a measured pair was measured again"
    assert len(folder_only) == 1 and "recovered from the run folder" in resumed.stdout
