"""The controller itself stopped mid-run (Ctrl-C, then SIGKILL), then
`harness run --resume`: what was measured stays, the rest is measured once."""

from __future__ import annotations

import signal

import pytest

from tests.faults.checks import assert_outcome
from tests.faults.lab_faults import no_agent_left, wait_for

VARIANTS = ("fp32", "int8", "fp16")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_controller_stopped_mid_run_then_resume(signum, fault_lab, faults_run, fault_models):
    setup = fault_lab(2)
    faults_run.plan.update(min_seconds=1.0, max_seconds=2.0, ci_rel_tol=0.0)
    proc = faults_run.start("run", "--model", str(fault_models / "model.yaml"), "--inventory", str(setup.inventory),
                            "--devices", "lab-a,lab-b", "--variants", ",".join(VARIANTS))
    stored = faults_run.stored()
    wait_for(lambda: stored.has("lab-a", "fp32") and stored.has("lab-b", "fp32"), 120, "a result from each device")
    proc.send_signal(signum)
    stopped = faults_run.finish(proc, timeout_s=60)
    if signum == signal.SIGINT:
        assert stopped.exit_code == 3 and "interrupted; every pair measured so far is saved" in stopped.stderr
        stopped.no_traceback()
    else:
        assert stopped.exit_code == -signal.SIGKILL
    run_id = stopped.results()["run_id"]
    if signum == signal.SIGINT:
        assert f"continue it with: harness run --resume {run_id}" in stopped.stderr, stopped.stderr[-2000:]
    in_store = stopped.db_records(run_id)
    measured = {pair: r["created_at"] for pair, r in in_store.items() if r["status"] == "ok"}
    if signum == signal.SIGINT:  # the file is rebuilt from the store on Ctrl-C
        assert set(stopped.by_pair(run_id)) == set(in_store)
    assert {("lab-a", "fp32"), ("lab-b", "fp32")} <= set(measured)
    assert len(measured) < 6, "the controller was stopped too late to test anything"
    stopped.assert_no_duplicates()
    # An agent caught mid-measurement ends on its own (max_seconds) and finds nobody to reply to.
    for device in setup.lab.devices:
        no_agent_left(device, timeout_s=20)

    resumed = faults_run.run("run", "--resume", run_id)
    assert resumed.exit_code == 0, resumed.stderr[-2000:]
    pairs = assert_outcome(resumed, ok={(d, v) for d in ("lab-a", "lab-b") for v in VARIANTS}, failed={})
    assert all(pairs[pair]["created_at"] == created for pair, created in measured.items()), "a measured pair was redone"
    assert {run for (run, _, _) in resumed.db_counts()} == {run_id}


def test_ctrl_c_in_round_one_then_resume_continues_the_part_measured_pairs(faults_run, fault_models):
    """Three rounds per pair: Ctrl-C once the first pair has its first round
    stored; --resume measures only the rounds each pair lacks, keeping the
    samples (and the first round's load time and mAP) already stored."""
    from harness.results.store import SqliteStore

    faults_run.plan.update(rounds=3, min_seconds=1.5, max_seconds=3.0, ci_rel_tol=0.0)
    proc = faults_run.start("run", "--model", str(fault_models / "model.yaml"), "--devices", "local", "--variants", "fp32,fp16")
    stored = faults_run.stored()
    wait_for(lambda: stored.has("local", "fp32"), 120, "the first round of the first pair")
    proc.send_signal(signal.SIGINT)
    stopped = faults_run.finish(proc, timeout_s=60)
    stopped.no_traceback()
    run_id = stopped.results()["run_id"]
    assert stopped.exit_code == 3, stopped.stderr[-2000:]
    assert f"continue it with: harness run --resume {run_id}" in stopped.stderr, stopped.stderr[-2000:]
    with SqliteStore(stopped.db) as store:
        partial = {r.key: (r, store.samples_ns(run_id, *r.key)) for r in store.records(run_id) if r.latency_ms.rounds < 3}
    assert ("local", "tiny-detector", "fp32") in partial, "stopped too late to test anything"

    resumed = faults_run.run("run", "--resume", run_id)
    assert resumed.exit_code == 0, resumed.stderr[-2000:]
    with SqliteStore(resumed.db) as store:
        after = {r.key: (r, store.samples_ns(run_id, *r.key)) for r in store.records(run_id)}
    assert {key[2] for key in after} == {"fp32", "fp16"} and all(r.latency_ms.rounds == 3 for r, _ in after.values())
    for key, (earlier, earlier_ns) in partial.items():
        record, samples_ns = after[key]
        assert samples_ns[: len(earlier_ns)] == earlier_ns and len(samples_ns) > len(earlier_ns), f"{key} was measured anew"
        assert (record.load_ms, record.accuracy) == (earlier.load_ms, earlier.accuracy)
    resumed.assert_no_duplicates()
