"""One budget rule against one record: the ONE place that says whether a
record meets a rule's bounds.

`harness gate` (evaluate.py), the pytest plugin's assertions and the "what to
ship" decision (ship.py) all ask this module, so a variant the gate passes is
never ruled out by the report for another reason, and the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from harness.gate.budgets import LATENCY_BOUNDS, Budget
from harness.gate.checks import Check, check_latency, check_map_drop, check_max, check_min_map, check_regression
from harness.gate.steps import check_step
from harness.results.record import Record

if TYPE_CHECKING:
    from harness.report.history_changes import SeriesChanges

PairKey = tuple[str, str, str]  # (device, model, variant)
# (run id, pair) -> the pair's raw latency samples in ns ([] when not stored).
SamplesOf = Callable[[str, PairKey], Sequence[int]]


def no_samples(run_id: str, key: PairKey) -> Sequence[int]:
    """Judge latency on the record's own summary (made from the same raw
    samples by the same function), for callers that hold only records."""
    return ()


@dataclass(frozen=True)
class References:
    """What a rule compares a record with: fp32 of the same model on the same
    device in the same run, and, with --baseline, the baseline run's pairs."""

    fp32: Mapping[tuple[str, str, str], Record]  # reference_key -> the run's fp32 record
    samples_of: SamplesOf = no_samples
    baseline_run: str | None = None
    baseline: Mapping[PairKey, Record] = field(default_factory=dict)
    # pair -> its p90 series up to the gated run, with its steps (None: no history to hand)
    steps_of: Callable[[PairKey], "SeriesChanges | None"] = lambda key: None


def reference_key(record: Record) -> tuple[str, str, str]:
    """(device, model, configuration): a swept pair's fp32 is the one measured
    in the same configuration (threads, runtime, XNNPACK)."""
    return (record.device.name, record.model.name, record.configuration.slug if record.configuration else "")


def fp32_references(records: Sequence[Record]) -> dict[tuple[str, str, str], Record]:
    return {reference_key(r): r for r in records if r.model.variant == "fp32"}


def fp32_of(refs: "References", record: Record) -> Record | None:
    return refs.fp32.get(reference_key(record))


def rule_checks(budget: Budget, record: Record, refs: References) -> list[Check]:
    """Every bound of `budget` on `record`, in BOUND_KEYS order. A regression
    bound without a baseline run checks nothing (it has nothing to compare)."""
    out: list[Check] = []
    name, run_id = budget.name, record.run_id
    for key in LATENCY_BOUNDS:
        bound = getattr(budget, key)
        if bound is not None:
            out.append(check_latency(name, record, refs.samples_of(run_id, record.key), key.removesuffix("_ms"), bound))
    if budget.peak_memory_mb is not None:
        peak = record.memory_mb.peak if record.memory_mb else None
        out.append(check_max(name, record, "peak_memory_mb", peak, budget.peak_memory_mb, "MB"))
    if budget.size_mb is not None:
        size = record.model.size_bytes / 1e6 if record.model.size_bytes is not None else None
        out.append(check_max(name, record, "size_mb", size, budget.size_mb, "MB"))
    if budget.min_map is not None:
        out.append(check_min_map(name, record, budget.min_map))
    if budget.max_map_drop is not None:
        out.append(check_map_drop(name, record, fp32_of(refs, record), budget.max_map_drop))
    if budget.max_regression_pct is not None and refs.baseline_run is not None:
        base = refs.baseline.get(record.key)
        base_ns = refs.samples_of(refs.baseline_run, record.key) if base is not None else []
        out.append(
            check_regression(name, record, base, base_ns, refs.samples_of(run_id, record.key), budget.max_regression_pct)
        )
    if budget.max_step_pct is not None:
        out.append(check_step(name, record, refs.steps_of(record.key), budget.max_step_pct, budget.step_runs))
    return out


def matching(budgets: Sequence[Budget], record: Record) -> list[Budget]:
    return [b for b in budgets if b.match.matches_record(record)]
