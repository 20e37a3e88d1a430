"""Budgets as assertions: `harness_budget(record, p90_ms=45, max_map_drop=0.015)`.

The keywords are the budgets file's bound keys, and the decision is the
gate's own (harness/gate): one Budget, checked against the record with the
same functions `harness gate` runs, so a failing test prints exactly the
message the gate prints. As in the gate, an inconclusive latency bound (the
bound inside the quantile's confidence interval) fails: measure longer.
"""

from __future__ import annotations

import difflib
from typing import Any

from harness.gate.budgets import BOUND_KEYS, Budget, Match
from harness.errors import InputError
from harness.gate.checks import Check
from harness.gate.evaluate import checks_for_record
from harness.results.record import Record


def check_budget(
    store: Any, record: Record, name: str, where: str, bounds: dict[str, float], baseline_run: str | None = None
) -> list[Check]:
    """Every check of one budget on one stored record (fp32 reference and
    samples from the record's own run, as `harness gate` finds them)."""
    for key, value in bounds.items():
        if key not in BOUND_KEYS:
            close = difflib.get_close_matches(key, BOUND_KEYS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"budget keys: {', '.join(BOUND_KEYS)}"
            raise InputError(f"unknown budget key {key!r}", source=where, place=key, hint=hint)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{key} must be a number, got {value!r}", source=where, place=key, hint=f"{key}=45")
    if not bounds:
        raise InputError("no bound given", source=where, hint=f"pass one or more of: {', '.join(BOUND_KEYS)}")
    budget = Budget(name=name, match=Match(), where=where, **{k: float(v) for k, v in bounds.items()})
    return checks_for_record(budget, store, record, baseline_run)


def failures(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.outcome in ("fail", "inconclusive")]
