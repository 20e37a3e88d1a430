"""`max_step_pct` in a budgets file: `harness gate` fails on a fresh 10%
p90 step with both commits in its message and passes on a flat history
(histories written through the real store, tests/unit/test_history_changes.py)."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.gate.budgets import load_budgets
from harness.errors import InputError
from tests.change_series import STORE_RUNS as RUNS
from tests.change_series import commit, write_history

BUDGETS = "budgets:\n  - name: no-creep\n    match: {variant: int8}\n    max_step_pct: 5\n    step_runs: 5\n"


def gate(tmp_path, capsys, **history) -> tuple[int, dict]:
    write_history(tmp_path / "results.sqlite", **history).close()
    (tmp_path / "budgets.yaml").write_text(BUDGETS)
    code = main(["gate", "latest", "--budgets", str(tmp_path / "budgets.yaml"), "--format", "json",
                 "--store", f"sqlite:///{tmp_path / 'results.sqlite'}"])
    return code, json.loads(capsys.readouterr().out)


def test_a_fresh_step_fails_with_both_commits(tmp_path, capsys):
    code, out = gate(tmp_path, capsys, step_pct=10, step_at=RUNS - 2)
    [check] = out["checks"]
    assert code == 1 and check["outcome"] == "fail"
    assert commit(RUNS - 3)[:12] in check["message"] and commit(RUNS - 2)[:12] in check["message"]


def test_a_flat_history_passes(tmp_path, capsys):
    code, out = gate(tmp_path, capsys, step_pct=0)
    assert code == 0 and [c["outcome"] for c in out["checks"]] == ["pass"]


def test_an_old_step_is_outside_the_window(tmp_path, capsys):
    code, out = gate(tmp_path, capsys, step_pct=10, step_at=10)
    assert code == 0 and out["checks"][0]["outcome"] == "pass"


def test_a_negative_bound_is_refused(tmp_path):
    (tmp_path / "b.yaml").write_text(BUDGETS.replace("max_step_pct: 5", "max_step_pct: -5"))
    with pytest.raises(InputError, match="max_step_pct must be >= 0"):
        load_budgets(tmp_path / "b.yaml")
