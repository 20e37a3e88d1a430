"""Budgets x stored pairs -> checks. Reads only the results store, so a gate
can be re-run on any stored run, as often as needed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from harness.errors import InputError
from harness.gate.budgets import Budget
from harness.gate.checks import Check
from harness.gate.rules import References, fp32_references, rule_checks
from harness.gate.ship import decide_all, ship_checks
from harness.report.history import remeasured_notes
from harness.report.history_changes import SeriesChanges, all_changes
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
    samples: dict[tuple[str, str, str, str], Sequence[int]] = {}

    def samples_of(run: str, key: tuple[str, str, str]) -> Sequence[int]:
        cache_key = (run, *key)
        if cache_key not in samples:
            samples[cache_key] = store.samples_ns(run, *key)
        return samples[cache_key]

    def steps_of(key: tuple[str, str, str]) -> SeriesChanges | None:
        device, model, variant = key
        found = all_changes(store, "p90", device=device, model=model, variant=variant, until_run=run_id)
        return next((s for s in found if s.trend.key == key), None)

    refs = References(
        fp32=fp32_references(records),
        samples_of=samples_of,
        baseline_run=baseline_run,
        baseline={r.key: r for r in store.records(baseline_run)} if baseline_run else {},
        steps_of=steps_of,
    )
    result = GateResult(run_id, baseline_run)
    result.notes = remeasured_notes(store, run_id)
    result.notes += remeasured_notes(store, baseline_run, "baseline run") if baseline_run else []
    decisions = decide_all(records, budgets) if any(b.ship for b in budgets) else []
    for budget in budgets:
        matched = [r for r in records if budget.match.matches_record(r)]
        if not matched:
            result.unmatched.append(unmatched_rule(budget))
            continue
        checks = [c for r in matched for c in rule_checks(budget, r, refs)]
        checks += ship_checks(budget, decisions, matched)
        result.checks.extend(checks)
        if all(c.outcome == "skipped" for c in checks):
            result.unchecked.append(unchecked_rule(budget, checks))
    return result


def checks_for_record(budget: Budget, store: ResultsReader, record: Record, baseline_run: str | None = None) -> list[Check]:
    """One budget on one stored record, found as `harness gate` finds it (the
    fp32 reference and the samples from the record's own run): the pytest
    plugin's assertions use this so their messages are the gate's."""
    refs = References(
        fp32=fp32_references(store.records(record.run_id)),
        samples_of=lambda run, key: store.samples_ns(run, *key),
        baseline_run=baseline_run,
        baseline={r.key: r for r in store.records(baseline_run)} if baseline_run else {},
    )
    checks = rule_checks(budget, record, refs)
    if not checks:  # as in the gate, a budget that checks nothing must not pass
        raise InputError(
            "the budget checks nothing: max_regression_pct compares against a baseline run and none was given",
            source=budget.where,
            hint="name the baseline run (harness_budget(..., baseline=RUN_ID)), or add a bound that needs none (e.g. p90_ms)",
        )
    return checks
