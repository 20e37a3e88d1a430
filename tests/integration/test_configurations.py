"""The configuration matrix end to end (issue 17): one `harness run
--threads 1,2 --runtimes ai-edge-litert,tflite-runtime` of the demo
detector's fp32 and int8 on `local` and a real sshd lab device, killed
mid-run and resumed; then the report's scaling and runtime views and a
budget matching `threads: 2`. One test for the whole matrix, with a short
measurement plan: it reads records, not latency."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from harness import paths
from harness.results.record import Record
from harness.results.store import SqliteStore
from tests.conftest import RECORDS_ONLY_PLAN, _exclusive, records_only_harness
from tests.polling import wait_for

pytestmark = pytest.mark.slow

VARIANTS = ("fp32", "int8")
THREADS = (1, 2)
RUNTIMES = ("ai-edge-litert", "tflite-runtime")
DEVICES = ("local", "lab-a")
SLOTS = [f"{v}@t{t},{r}" for v in VARIANTS for t in THREADS for r in RUNTIMES]
# RECORDS_ONLY_PLAN with fewer samples and a few eval images: 16 pairs, two rounds each.
PLAN = {**RECORDS_ONLY_PLAN, "min_runs": 20, "max_eval_images": 8}


@pytest.fixture(scope="module")
def demo_two_variants(demo_recipe, demo_datasets, session_cache):
    """fp32 and int8 of the demo detector in the session cache (the run finds them there)."""
    from harness.convert.converter import convert_variants

    calibration, _ = demo_datasets
    with _exclusive(session_cache / ".demo-artifacts.lock"):
        return convert_variants(demo_recipe, VARIANTS, calibration, session_cache)


def stored(db: Path) -> list[Record]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            rows = conn.execute("SELECT record_json FROM records WHERE superseded_at IS NULL").fetchall()
    except sqlite3.OperationalError:  # polled between the file's creation and its first migration
        return []
    return [Record.from_dict(json.loads(text)) for (text,) in rows]


def on(records: list[Record], device: str) -> dict[str, Record]:
    return {r.key[2]: r for r in records if r.device.name == device}


def test_a_thread_and_runtime_matrix_on_local_and_a_lab_device_resumes_reports_and_gates(
    demo_two_variants, worker_cache, ssh_lab, tmp_path
):
    side = paths.tflite214_python()
    if side is None:
        pytest.skip("no tflite-runtime 2.14 side venv (make .venv-tflite214)")
    lab = ssh_lab(1)
    known_hosts = lab.known_hosts(tmp_path / "known_hosts")
    # The lab device's python3 has ai-edge-litert; its tflite-runtime is another interpreter.
    inventory = lab.inventory(tmp_path / "inventory.yaml", known_hosts=known_hosts,
                              extra={"lab-a": {"runtime_pythons": {"tflite-runtime": str(side)}}})
    reports = tmp_path / "reports"
    env = dict(os.environ, HARNESS_REPORTS=str(reports), HARNESS_CACHE=str(worker_cache), COLUMNS="80")
    env.pop("HARNESS_STORE", None)
    harness, env = records_only_harness(env)
    env["FAULTS_PLAN"] = json.dumps(PLAN)
    db = reports / "results.sqlite"

    # 1. Killed (SIGKILL, no clean-up) once the lab device has stored three rounds.
    run = subprocess.Popen(
        [*harness, "run", "--inventory", str(inventory), "--devices", ",".join(DEVICES), "--variants", ",".join(VARIANTS),
         "--threads", "1,2", "--runtimes", ",".join(RUNTIMES)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        wait_for(lambda: len(on(stored(db), "lab-a")) >= 3 or run.poll() is not None, 600, "three rounds on lab-a")
        os.killpg(run.pid, signal.SIGKILL)
    finally:
        run.kill()
        _, err = run.communicate(timeout=60)
    assert run.returncode == -signal.SIGKILL, err[-3000:]
    before = stored(db)
    for device in DEVICES:
        mine = on(before, device)
        assert set(mine) <= set(SLOTS)
        # Interleaved: no pair starts its second round before every pair had its first.
        if any(r.latency_ms.rounds == 2 for r in mine.values() if r.latency_ms):
            assert set(mine) == set(SLOTS), f"{device}: a second round began before {set(SLOTS) - set(mine)}"
    complete = {r.key: r.created_at for r in before if r.status == "ok" and r.latency_ms.rounds == 2}
    partial = [r for r in before if r.status == "ok" and r.latency_ms.rounds == 1]
    assert partial, "the kill was meant to land mid-run"
    with SqliteStore(db) as store:
        run_id = store.resolve_run("latest")
        partial_ns = {r.key: store.samples_ns(run_id, *r.key) for r in partial}

    # 2. --resume measures only what is missing and continues what was part-measured.
    resumed = subprocess.run([*harness, "run", "--resume", run_id], env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    after = stored(db)
    assert sorted(r.key for r in after) == sorted((d, "demo-detector", s) for d in DEVICES for s in SLOTS)
    for r in after:
        config = r.configuration
        assert r.status == "ok" and r.latency_ms.rounds == 2, (r.key, r.error)
        assert (r.threads, r.device.runtime.name) == (config.threads, config.runtime)
        assert r.accuracy is not None and r.accuracy.n_images == 8
    assert {r.key: r.created_at for r in after if r.key in complete} == complete  # not measured again
    with SqliteStore(db) as store:
        for key, first_ns in partial_ns.items():
            assert store.samples_ns(run_id, *key)[: len(first_ns)] == first_ns  # continued, not restarted
    with sqlite3.connect(db) as conn:
        (rows,) = conn.execute("SELECT COUNT(*) FROM records").fetchone()
    assert rows == len(DEVICES) * len(SLOTS)
    for device in DEVICES:
        assert f"scaling · demo-detector on {device}" in resumed.stdout
        assert f"runtimes · demo-detector on {device}" in resumed.stdout

    # 3. The report's views in Markdown, with every (variant, runtime) line.
    md = subprocess.run([*harness, "report", "latest", "--format", "md"], env=env, capture_output=True, text=True, timeout=120)
    assert md.returncode == 0, md.stderr
    for device in DEVICES:
        assert f"#### Scaling: demo-detector on `{device}`" in md.stdout
        assert f"#### Runtimes: demo-detector on `{device}`" in md.stdout
    assert md.stdout.count("| fp32 | tflite-runtime | 1 |") == len(DEVICES)

    # 4. A budget matching `threads: 2` judges the four 2-thread fp32 pairs only.
    budgets = tmp_path / "budgets.yaml"
    for p90_ms, code in ((10_000, 0), (0.001, 1)):
        budgets.write_text(f"budgets:\n  - name: t2\n    match: {{variant: fp32, threads: 2}}\n    p90_ms: {p90_ms}\n")
        gate = subprocess.run([*harness, "gate", "latest", "--budgets", str(budgets), "--format", "json"],
                              env=env, capture_output=True, text=True, timeout=120)
        assert gate.returncode == code, gate.stdout[-2000:] + gate.stderr[-2000:]
        checks = json.loads(gate.stdout)["checks"]
        assert sorted((c["device"], c["variant"]) for c in checks) == sorted(
            (d, f"fp32@t2,{r}") for d in DEVICES for r in RUNTIMES)
        assert {c["outcome"] for c in checks} == {"pass" if code == 0 else "fail"}
