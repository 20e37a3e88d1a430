"""Four controllers writing runs at once to one PostgreSQL lose nothing and
never mix records of different runs."""

from __future__ import annotations

import os
import subprocess
import sys

from harness.results.open import STORE_ENV, open_store
from tests.conftest import REPO
from tests.integration.store_writer import expected_samples

WRITERS, PAIRS, SAMPLES = 4, 40, 3000


def test_four_controllers_write_runs_concurrently_to_one_postgresql(pg_url, monkeypatch, tmp_path):
    env = dict(os.environ, **{STORE_ENV: pg_url})
    run_ids = [f"controller-{n}" for n in range(WRITERS)]
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.integration.store_writer", run_id, str(PAIRS), str(SAMPLES)],
            cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for run_id in run_ids
    ]
    try:
        for writer in writers:  # every writer imported and waiting: release them together
            assert writer.stdout.readline().strip() == "ready"
        for writer in writers:
            writer.stdin.write("go\n")
            writer.stdin.flush()
        errors = [writer.communicate(timeout=120)[1] for writer in writers]
    finally:
        for writer in writers:
            writer.kill()
    assert [w.returncode for w in writers] == [0] * WRITERS, errors

    monkeypatch.setenv(STORE_ENV, pg_url)
    with open_store(None, tmp_path) as store:
        assert sorted(r.run_id for r in store.runs()) == run_ids
        assert {r.status for r in store.runs()} == {"finished"}
        for run_id in run_ids:
            records = store.records(run_id)
            assert [r.model.variant for r in records] == [f"v{p}" for p in range(PAIRS)]  # each once, in order
            assert {r.run_id for r in records} == {run_id}
            for pair in (0, PAIRS // 2, PAIRS - 1):
                assert store.samples_ns(run_id, "local", "demo", f"v{pair}") == expected_samples(run_id, pair, SAMPLES)
        assert len(store.trend("p50")) == WRITERS * PAIRS
        (schema_rows,) = store._execute("SELECT COUNT(*) FROM harness_schema").fetchone()
        assert schema_rows == 1  # the four racing migrations applied it once
