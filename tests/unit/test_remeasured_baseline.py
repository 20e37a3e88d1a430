"""A run used as a baseline and then measured again (`gate --remeasure`):
the store keeps its first record, and every comparison or gate against it
says which measurement it used."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest

from harness.cli import main
from harness.results.store import RunInfo, SqliteStore
from tests.store_records import make_record

FIRST, AGAIN = "2026-01-01T10:00:00Z", "2026-01-01T11:30:00Z"


def samples_ns(center_ms: float, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [int(center_ms * (1 + rng.uniform(-0.05, 0.05)) * 1e6) for _ in range(400)]


@pytest.fixture
def reports(tmp_path):
    """r1 (the baseline) with its int8 measured again, faster; r2 a later run."""
    with SqliteStore(tmp_path / "results.sqlite") as store:
        for run_id, when in (("r1", "2026-01-01T09:00:00Z"), ("r2", "2026-01-02T09:00:00Z")):
            store.begin_run(RunInfo(run_id, when, "0.1.0", "running", "run", "/r"))
            for variant, ms in (("fp32", 4.0), ("int8", 2.0)):
                store.add_record(replace(make_record(run_id, variant, p50_ms=ms), created_at=FIRST), samples_ns(ms, 1))
            store.finish_run(run_id, "finished")
        store.add_record(replace(make_record("r1", "int8", p50_ms=1.5), created_at=AGAIN), samples_ns(1.5, 2), supersede=True)
    return tmp_path


def cli(reports, capsys, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--reports", str(reports)])
    out = capsys.readouterr()
    return code, out.out, out.err


NOTE = (f"baseline run r1, local/demo/int8: remeasured; this uses the re-measurement of {AGAIN}, "
        f"not the superseded measurement of {FIRST} (kept in the store)")


def test_the_first_measurement_stays_in_the_store_superseded(reports):
    with SqliteStore(reports / "results.sqlite") as store:
        (old,) = store.superseded("r1")
        assert (old.record.model.variant, old.record.created_at, old.record.latency_ms.p50) == ("int8", FIRST, 2.0)
        assert {r.model.variant: r.created_at for r in store.records("r1")} == {"fp32": FIRST, "int8": AGAIN}


@pytest.mark.parametrize("fmt", ["json", "md", "html", "table"])
def test_a_comparison_against_a_remeasured_baseline_names_the_measurement_it_used(reports, capsys, fmt):
    code, out, _ = cli(reports, capsys, "report", "r2", "--baseline", "r1", "--format", fmt)
    assert code == 0
    if fmt == "json":
        doc = json.loads(out)
        assert doc["notes"] == [NOTE]
        int8 = next(p for p in doc["pairs"] if p["variant"] == "int8")
        assert int8["baseline_p50_ms"] == pytest.approx(1.5, rel=0.03)  # the re-measurement's samples
    else:
        assert NOTE in " ".join(out.split()), out  # the table wraps lines


def test_the_candidate_side_is_named_too_and_a_run_never_remeasured_has_no_note(reports, capsys):
    code, out, _ = cli(reports, capsys, "report", "r1", "--baseline", "r2", "--format", "json")
    assert code == 0 and json.loads(out)["notes"] == [NOTE.replace("baseline run", "run")]
    code, out, _ = cli(reports, capsys, "report", "r2", "--baseline", "r2", "--format", "json")
    assert code == 0 and json.loads(out)["notes"] == []


def test_the_gate_names_the_measurement_of_a_remeasured_baseline(reports, capsys, tmp_path):
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("budgets:\n  - name: no-regression\n    match: {variant: int8}\n    max_regression_pct: 5\n")
    code, out, _ = cli(reports, capsys, "gate", "r2", "--budgets", str(budgets), "--baseline", "r1",
                       "--format", "json")
    doc = json.loads(out)
    assert doc["notes"] == [NOTE]
    assert code == 1 and doc["checks"][0]["outcome"] == "fail"  # 2.0 ms against the re-measured 1.5 ms
    bound = tmp_path / "bound.yaml"
    bound.write_text("budgets:\n  - name: p90\n    match: {variant: int8}\n    p90_ms: 100\n")
    code, out, _ = cli(reports, capsys, "gate", "r1", "--budgets", str(bound))
    assert NOTE.replace("baseline run", "run") in " ".join(out.split())  # the gated run itself was remeasured
