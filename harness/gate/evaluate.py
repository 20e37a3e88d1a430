"""Budgets x stored pairs -> checks. Reads only the results store, so a gate
can be re-run on any stored run, as often as needed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from harness.errors import InputError
from harness.gate.budgets import LATENCY_BOUNDS, Budget
from harness.gate.checks import (
    Check,
    check_latency,
    check_map_drop,
    check_max,
    check_min_map,
    check_regression,
)
from harness.report.history import remeasured_notes
from harness.results.record import Record
from harness.results.store import ResultsStore as ResultsReader  # any back end


@dataclass(frozen=True)
class IdleRule:
    """A rule that vouches for nothing in this run, so it fails the gate:
    ``unmatched``, it matched no pair (most often a typo in a glob);
    ``unchecked``, it matched pairs but decided nothing on any of them (its
    only bound needs a --baseline that was not given, or every check was
    skipped)."""

    kind: Literal["unmatched", "unchecked"]
    rule: str
    where: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "where": self.where, "message": self.message}


def unmatched_rule(budget: Budget) -> IdleRule:
    message = (
        f"budget {budget.name!r} matched no pair in this run ({budget.match.describe()}); "
        f"fix its match globs/tags at {budget.where}, or gate a run that measured those pairs"
    )
    return IdleRule("unmatched", budget.name, budget.where, message)


def unchecked_rule(budget: Budget, checks: Sequence[Check]) -> IdleRule:
    if not checks:  # its only bound, max_regression_pct, is left out without a baseline
        why = (
            "max_regression_pct compares against a baseline run and none was given; "
            "pass --baseline RUN_ID, or add a bound that needs none (e.g. p90_ms)"
        )
    else:
        why = (
            f"all {len(checks)} of its checks were skipped (first: {checks[0].message}); "
            "gate a run (and a --baseline) that measured those pairs, or narrow its match"
        )
    message = f"budget {budget.name!r} checked nothing in this run: {why} (rule at {budget.where})"
    return IdleRule("unchecked", budget.name, budget.where, message)


@dataclass
class GateResult:
    run_id: str
    baseline_run: str | None
    checks: list[Check] = field(default_factory=list)
    unmatched: list[IdleRule] = field(default_factory=list)
    unchecked: list[IdleRule] = field(default_factory=list)

    @property
    def vacuous(self) -> list[IdleRule]:
        """Every rule that vouches for nothing; each one fails the gate."""
        return [*self.unmatched, *self.unchecked]
    # Which measurement was gated where a pair was measured again.
    notes: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for c in self.checks if c.outcome == outcome)

    def failed(self, *, inconclusive_fails: bool = True) -> bool:
        return bool(self.vacuous) or self.count("fail") > 0 or (inconclusive_fails and self.count("inconclusive") > 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "baseline_run": self.baseline_run,
            "counts": {o: self.count(o) for o in ("pass", "fail", "inconclusive", "skipped")},
            "unmatched": [u.to_dict() for u in self.unmatched],
            "unchecked": [u.to_dict() for u in self.unchecked],
            "checks": [c.to_dict() for c in self.checks],
            "notes": self.notes,
        }


def evaluate(budgets: Sequence[Budget], store: ResultsReader, run_id: str, baseline_run: str | None = None) -> GateResult:
    records = store.records(run_id)
    baseline = {r.key: r for r in store.records(baseline_run)} if baseline_run else {}
    fp32 = {(r.device.name, r.model.name): r for r in records if r.model.variant == "fp32"}
    samples: dict[tuple[str, str, str], list[int]] = {}

    def samples_of(run: str, key: tuple[str, str, str]) -> list[int]:
        cache_key = (run, *key)
        if cache_key not in samples:
            samples[cache_key] = store.samples_ns(run, *key)  # type: ignore[index]
        return samples[cache_key]  # type: ignore[index]

    result = GateResult(run_id, baseline_run)
    result.notes = remeasured_notes(store, run_id)
    result.notes += remeasured_notes(store, baseline_run, "baseline run") if baseline_run else []
    for budget in budgets:
        matched = [r for r in records if budget.match.matches(*r.key, r.device.tags)]
        if not matched:
            result.unmatched.append(unmatched_rule(budget))
            continue
        checks = [c for r in matched for c in _checks(budget, r, fp32, baseline, baseline_run, run_id, samples_of)]
        result.checks.extend(checks)
        if all(c.outcome == "skipped" for c in checks):
            result.unchecked.append(unchecked_rule(budget, checks))
    return result


def checks_for_record(budget: Budget, store: ResultsReader, record: Record, baseline_run: str | None = None) -> list[Check]:
    """One budget on one stored record, found as `harness gate` finds it (the
    fp32 reference and the samples from the record's own run): the pytest
    plugin's assertions use this so their messages are the gate's."""
    records = store.records(record.run_id)
    fp32 = {(r.device.name, r.model.name): r for r in records if r.model.variant == "fp32"}
    baseline = {r.key: r for r in store.records(baseline_run)} if baseline_run else {}
    checks = _checks(
        budget, record, fp32, baseline, baseline_run, record.run_id, lambda run, key: store.samples_ns(run, *key)
    )
    if not checks:  # as in the gate, a budget that checks nothing must not pass
        raise InputError(
            "the budget checks nothing: max_regression_pct compares against a baseline run and none was given",
            source=budget.where,
            hint="name the baseline run (harness_budget(..., baseline=RUN_ID)), or add a bound that needs none (e.g. p90_ms)",
        )
    return checks


def _checks(
    budget: Budget,
    record: Record,
    fp32: dict[tuple[str, str], Record],
    baseline: dict[tuple[str, str, str], Record],
    baseline_run: str | None,
    run_id: str,
    samples_of: Any,
) -> list[Check]:
    out: list[Check] = []
    name = budget.name
    for key in LATENCY_BOUNDS:
        bound = getattr(budget, key)
        if bound is not None:
            out.append(check_latency(name, record, samples_of(run_id, record.key), key.removesuffix("_ms"), bound))
    if budget.peak_memory_mb is not None:
        peak = record.memory_mb.peak if record.memory_mb else None
        out.append(check_max(name, record, "peak_memory_mb", peak, budget.peak_memory_mb, "MB"))
    if budget.size_mb is not None:
        size = record.model.size_bytes / 1e6 if record.model.size_bytes is not None else None
        out.append(check_max(name, record, "size_mb", size, budget.size_mb, "MB"))
    if budget.min_map is not None:
        out.append(check_min_map(name, record, budget.min_map))
    if budget.max_map_drop is not None:
        out.append(check_map_drop(name, record, fp32.get((record.device.name, record.model.name)), budget.max_map_drop))
    if budget.max_regression_pct is not None and baseline_run is not None:
        base = baseline.get(record.key)
        base_ns = samples_of(baseline_run, record.key) if base is not None else []
        out.append(
            check_regression(name, record, base, base_ns, samples_of(run_id, record.key), budget.max_regression_pct)
        )
    return out
