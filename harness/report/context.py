"""What a run's report needs from the store beyond its records: the raw
latency samples (distributions), the same pairs in earlier runs (trends) and
the in-run statistical comparisons. Loaded through the store's public
methods only; renderers get this frozen bundle and never touch the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from harness.gate.budgets import Budget
from harness.measure.stats import ns_to_ms
from harness.report.compare import ComparisonReport, compare_devices, compare_variants
from harness.report.history import Key, ResultsReader, Trend, trends
from harness.results.record import Record


@dataclass(frozen=True)
class ReportContext:
    samples_ms: Mapping[Key, tuple[float, ...]] = field(default_factory=dict)  # sorted, per pair
    trends: Sequence[Trend] = ()  # p50 per pair, this run and every earlier one
    comparisons: Sequence[ComparisonReport] = ()  # variant vs fp32, device vs first device
    # The bounds "what to ship" decides with: a budgets file's rules, or None
    # for the recipe's defaults (harness/gate/ship.py).
    budgets: Sequence[Budget] | None = None


def load_context(
    store: ResultsReader, run_id: str, records: Sequence[Record], budgets: Sequence[Budget] | None = None
) -> ReportContext:
    samples = {
        r.key: tuple(sorted(ns_to_ms(store.samples_ns(run_id, *r.key)))) for r in records if r.status == "ok"
    }
    keys = {r.key for r in records}
    history = [t for t in trends(store, "p50", until_run=run_id) if t.key in keys and _measured_runs(t) >= 2]
    comparisons: list[ComparisonReport] = []
    if any(r.model.variant == "fp32" for r in records) and len({r.model.variant for r in records}) > 1:
        comparisons.append(compare_variants(store, run_id, "fp32"))
    if len({r.device.name for r in records}) > 1:
        comparisons.append(compare_devices(store, run_id))
    return ReportContext({k: v for k, v in samples.items() if v}, tuple(history), tuple(comparisons), budgets)


def _measured_runs(trend: Trend) -> int:
    return sum(1 for p in trend.points if p.value is not None)
